import { entries, flagName, yamlKey } from "./Resolve.js"
import type { SettingsTree } from "./Setting.js"

/**
 * The rows of docs/configuration.md's option tables, from the same settings table as the flags, so the reference
 * cannot drift from the code: `npm run docs:config` writes them and a test compares.
 */
export const referenceRows = (tree: SettingsTree): Array<string> =>
  entries(tree).map(({ path, setting }) => {
    const defaultText = setting.defaultText === "" ? "" : `\`${setting.defaultText}\``
    return `| \`--${flagName(path)}\` | \`${path.map(yamlKey).join(".")}\` | ${defaultText} | ${setting.description} |`
  })
