/**
 * `--config.expand-env`: replaces `${VAR}`, `$VAR` and `${VAR:default}` in the raw config text before it is parsed.
 * The default applies when VAR is unset or empty; only the first ':' splits, so `${A:x:y}` defaults to "x:y".
 * `$$` stands for a literal `$` so a secret containing one can still be written; a `$` followed by anything else
 * is kept as it is.
 */
const reference = /\$(?:\$|\{([^}:]*)(?::([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g

export const expandEnv = (text: string, env: Readonly<Record<string, string | undefined>>): string =>
  text.replace(reference, (whole, bracedName?: string, fallback?: string, bareName?: string) => {
    if (whole === "$$") return "$"
    const name = bracedName ?? bareName ?? ""
    const value = env[name]
    if (fallback !== undefined && (value === undefined || value === "")) return fallback
    return value ?? ""
  })
