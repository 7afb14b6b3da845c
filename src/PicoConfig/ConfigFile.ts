import * as Setting from "./Setting.js"

/** `--config.path` and `--config.expand-env`: flags of every command that reads a YAML file, never keys in it. */
export const configFileSettings = {
  config: {
    path: Setting.string("YAML file with these settings, named as the flags with _ for -.", "", "file"),
    expandEnv: Setting.toggle("Expand ${VAR}, $VAR and ${VAR:default} in the file from the environment."),
  },
}
