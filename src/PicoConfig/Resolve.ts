import * as Either from "effect/Either"
import { isSetting, type Resolved, type Setting, type SettingsTree } from "./Setting.js"

/** `gatewayTimeout` → `gateway_timeout`: the spelling of YAML keys. */
export const yamlKey = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** `["proxy", "gatewayTimeout"]` → `proxy.gateway-timeout`: the spelling of CLI flags. */
export const flagName = (path: ReadonlyArray<string>): string =>
  path.map((key) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join(".")

export interface SettingEntry {
  readonly path: ReadonlyArray<string>
  readonly setting: Setting<unknown>
}

/** Every leaf of the tree with its path, in declaration order (the order --help shows). */
export const entries = (tree: SettingsTree, prefix: ReadonlyArray<string> = []): Array<SettingEntry> =>
  Object.entries(tree).flatMap(([key, node]) =>
    isSetting(node) ? [{ path: [...prefix, key], setting: node }] : entries(node, [...prefix, key]),
  )

export interface Sources {
  /** Values given on the command line, keyed by flag name; absent flags are not present. */
  readonly flags: Readonly<Record<string, unknown>>
  /** The parsed YAML document, if a config file was given. */
  readonly file?: { readonly path: string; readonly document: unknown }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const show = (raw: unknown): string => JSON.stringify(raw) ?? String(raw)

/** Keys in the file that no setting claims: a typo must not be silently ignored. */
const unknownKeys = (tree: SettingsTree, document: unknown, prefix: string): Array<string> => {
  if (!isRecord(document)) return []
  const known = new Map(Object.entries(tree).map(([key, node]) => [yamlKey(key), node]))
  return Object.entries(document).flatMap(([key, value]) => {
    const node = known.get(key)
    const path = prefix === "" ? key : `${prefix}.${key}`
    if (node === undefined) return [path]
    return isSetting(node) ? [] : unknownKeys(node, value, path)
  })
}

/**
 * The first section the file gives a value instead of a mapping (`proxy: 5`), which would otherwise read as
 * "nothing set here". An empty section (`proxy:`) is allowed.
 */
const sectionProblem = (
  tree: SettingsTree,
  document: unknown,
  prefix: string,
  file: string,
): string | undefined => {
  if (!isRecord(document)) return undefined
  for (const [key, node] of Object.entries(tree)) {
    if (isSetting(node)) continue
    const value = document[yamlKey(key)]
    const path = prefix === "" ? yamlKey(key) : `${prefix}.${yamlKey(key)}`
    if (value === undefined || value === null) continue
    if (!isRecord(value)) {
      const examples = Object.keys(node).slice(0, 2).map(yamlKey).join(", ")
      return `${path} in ${file}: invalid value ${show(value)}: expected a mapping of settings (${examples}, ...)`
    }
    const nested = sectionProblem(node, value, path, file)
    if (nested !== undefined) return nested
  }
  return undefined
}

const lookup = (document: unknown, path: ReadonlyArray<string>): unknown => {
  let node = document
  for (const key of path) {
    if (!isRecord(node)) return undefined
    node = node[yamlKey(key)]
  }
  return node
}

/**
 * Resolves every setting with the precedence flags > file > defaults. The error names the field, where the bad
 * value came from and the value itself, because that is what someone fixing a deployment needs to see.
 */
export const resolve = <T extends SettingsTree>(
  tree: T,
  sources: Sources,
): Either.Either<Resolved<T>, string> => {
  if (sources.file !== undefined) {
    const { path, document } = sources.file
    if (document !== null && document !== undefined && !isRecord(document)) {
      return Either.left(`${path}: expected a mapping of sections (proxy:, log:, ...) at the top level`)
    }
    const unknown = unknownKeys(tree, document, "")
    if (unknown.length > 0)
      return Either.left(`${path}: unknown key ${unknown.map((k) => `"${k}"`).join(", ")}`)
    const problem = sectionProblem(tree, document, "", path)
    if (problem !== undefined) return Either.left(problem)
  }
  const result: Record<string, unknown> = {}
  for (const { path, setting } of entries(tree)) {
    const flag = flagName(path)
    const field = path.map(yamlKey).join(".")
    let value: unknown = setting.defaultValue
    let raw: unknown
    let origin: string | undefined
    if (flag in sources.flags) {
      raw = sources.flags[flag]
      origin = `--${flag}`
    } else if (sources.file !== undefined) {
      const fromFile = lookup(sources.file.document, path)
      if (fromFile !== undefined && fromFile !== null) {
        raw = fromFile
        origin = `${field} in ${sources.file.path}`
      }
    }
    if (origin !== undefined) {
      const decoded = setting.decode(raw)
      if (Either.isLeft(decoded)) {
        const shown = setting.secret
          ? "(redacted)"
          : show(setting.shown !== undefined && typeof raw === "string" ? setting.shown(raw) : raw)
        return Either.left(`${origin}: invalid value ${shown}: ${decoded.left}`)
      }
      value = decoded.right
    }
    let target = result
    for (const key of path.slice(0, -1)) {
      target[key] ??= {}
      target = target[key] as Record<string, unknown>
    }
    target[path[path.length - 1] as string] = value
  }
  return Either.right(result as Resolved<T>)
}

/** A secret's value as printed: each item of a list replaced (so the count still shows), unset left as it is. */
const redactSecret = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(() => "(redacted)")
    : value === "" || value === undefined
      ? value
      : "(redacted)"

/** The configuration as a plain object for the startup log, written as in a YAML file, with secrets replaced. */
export const redacted = (tree: SettingsTree, config: unknown): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, node] of Object.entries(tree)) {
    const value = isRecord(config) ? config[key] : undefined
    out[yamlKey(key)] = isSetting(node)
      ? node.secret
        ? redactSecret(value)
        : node.encode(value)
      : redacted(node, value)
  }
  return out
}
