// The Either module, not the "effect" barrel, here and in the other settings modules: `pico --help` loads the
// settings tables and nothing else of Effect (a barrel import would pull all of it into the bundle's entry chunk).
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import {
  addressExpected,
  formatHostPort,
  type HostPort,
  parseDialAddress,
  parseHostPort,
} from "../Domain/Address.js"
import { withoutCredentials } from "../internal/UrlCredentials.js"
import { formatGoDuration, parseGoDuration } from "./Duration.js"

/**
 * One configurable value: its help text, default and decoder. A settings tree built from these drives the CLI
 * flags, the YAML keys, the defaults, `--help` and the validation errors, so the four can never disagree.
 */
export interface Setting<A> {
  readonly _tag: "Setting"
  readonly description: string
  readonly defaultValue: A
  /** How the default is shown in --help ("" hides it). */
  readonly defaultText: string
  /** A short placeholder for the value in --help, e.g. "duration". */
  readonly valueName: string
  readonly repeated: boolean
  /** A repeated flag's value may also be a comma-separated list. */
  readonly commaSeparated: boolean
  /** False for a switch such as --config.expand-env, which is given alone (or as --flag=false). */
  readonly takesValue: boolean
  /** Secrets are redacted wherever the configuration is printed. */
  readonly secret: boolean
  /** How a raw value is quoted in an error (a secret's never is): a URL's without its credentials. */
  readonly shown?: (text: string) => string
  /** Turns a raw value (a flag's text or a YAML scalar) into A, or explains what is wrong with it. */
  readonly decode: (raw: unknown) => Either.Either<A, string>
  /**
   * The value as it would be written in a YAML file (durations as "15s"), for the startup log. A method, so a
   * Setting<number> is still a Setting<unknown> in a tree.
   */
  encode(value: A): unknown
}

/** A tree of settings: leaves are Settings, branches are sections ("proxy", "log", ...). */
export interface SettingsTree {
  readonly [key: string]: Setting<unknown> | SettingsTree
}

/** The typed configuration a settings tree describes. */
export type Resolved<T> = {
  readonly [K in keyof T]: T[K] extends Setting<infer A> ? A : Resolved<T[K]>
}

export const isSetting = (node: Setting<unknown> | SettingsTree): node is Setting<unknown> =>
  node._tag === "Setting"

const make = <A>(
  fields: Omit<Setting<A>, "_tag" | "repeated" | "commaSeparated" | "takesValue" | "secret" | "encode"> &
    Partial<Setting<A>>,
): Setting<A> => ({
  _tag: "Setting",
  repeated: false,
  commaSeparated: false,
  takesValue: true,
  secret: false,
  encode: (value) => value,
  ...fields,
})

const scalarText = (raw: unknown): string | undefined =>
  typeof raw === "string"
    ? raw
    : typeof raw === "number" || typeof raw === "boolean"
      ? String(raw)
      : undefined

export const string = (description: string, defaultValue = "", valueName = "string"): Setting<string> =>
  make({
    description,
    defaultValue,
    defaultText: defaultValue,
    valueName,
    decode: (raw) => {
      const text = scalarText(raw)
      return text === undefined ? Either.left("expected a string") : Either.right(text)
    },
  })

/** A string that must pass `check`, which returns an error message or undefined. */
export const checkedString = (
  description: string,
  defaultValue: string,
  check: (value: string) => string | undefined,
  valueName = "string",
): Setting<string> =>
  make({
    description,
    defaultValue,
    defaultText: defaultValue,
    valueName,
    decode: (raw) => {
      const text = scalarText(raw)
      if (text === undefined) return Either.left("expected a string")
      const problem = check(text)
      return problem === undefined ? Either.right(text) : Either.left(problem)
    },
  })

/**
 * A URL, checked by `check`: credentials in it (`https://user:password@host`) are redacted wherever the value is
 * printed (the startup log, an error about it).
 */
export const url = (
  description: string,
  defaultValue: string,
  check: (value: string) => string | undefined,
): Setting<string> => ({
  ...checkedString(description, defaultValue, check, "url"),
  encode: (value: string) => withoutCredentials(value),
  shown: withoutCredentials,
})

/** A check for checkedString: the value must be an http or https URL, like `example`. */
export const httpUrl =
  (example: string) =>
  (text: string): string | undefined => {
    const url = URL.parse(text)
    return url !== null && (url.protocol === "http:" || url.protocol === "https:")
      ? undefined
      : `expected an http(s) URL such as ${example}`
  }

/** A host:port to listen on (":8000" is every interface), decoded once, here. */
export const address = (description: string, defaultText: string): Setting<HostPort> =>
  make({
    description,
    defaultValue: parseHostPort(defaultText) as HostPort,
    defaultText,
    valueName: "addr",
    encode: formatHostPort,
    decode: (raw) => {
      const parsed = parseHostPort(scalarText(raw) ?? "")
      return parsed === undefined ? Either.left(addressExpected) : Either.right(parsed)
    },
  })

/**
 * An address others connect to, which may be left empty (undefined: the setting's documented fallback). Unlike a
 * bind address it needs a host, and a port other than 0, which nothing can reach.
 */
export const optionalDialAddress = (description: string): Setting<HostPort | undefined> =>
  make<HostPort | undefined>({
    description,
    defaultValue: undefined,
    defaultText: "",
    valueName: "addr",
    encode: (value) => (value === undefined ? "" : formatHostPort(value)),
    decode: (raw) => {
      const text = scalarText(raw)
      if (text === "") return Either.right(undefined)
      const parsed = parseDialAddress(text ?? "")
      return parsed === undefined
        ? Either.left(
            'expected an address others can reach, such as "10.0.0.5:8003" (a host, and a port other than 0)',
          )
        : Either.right(parsed)
    },
  })

export const secret = (description: string, valueName = "string"): Setting<string> => ({
  ...string(description, "", valueName),
  secret: true,
})

/**
 * The longest duration a Node timer can wait (2^31 - 1 ms, about 24.8 days): a longer one fires after 1 ms, so a
 * timeout of "1000h" would time out every request at once.
 */
const MAX_DURATION_MS = 2_147_483_647

/** A Go-style duration ("15s"), decoded to a Duration once, here, so nothing past the config counts milliseconds. */
export const duration = (description: string, defaultText: string, options?: { allowZero?: boolean }) =>
  make<Duration.Duration>({
    description,
    defaultValue: Duration.millis(parseGoDuration(defaultText) ?? 0),
    defaultText,
    valueName: "duration",
    encode: (value) => formatGoDuration(Duration.toMillis(value)),
    decode: (raw) => {
      const millis = typeof raw === "string" ? parseGoDuration(raw) : undefined
      if (millis === undefined) return Either.left("expected a duration such as 500ms, 15s or 1m")
      if (millis === 0 && options?.allowZero !== true) return Either.left("must be greater than zero")
      if (millis > MAX_DURATION_MS) return Either.left(`must be at most ${formatGoDuration(MAX_DURATION_MS)}`)
      return Either.right(Duration.millis(millis))
    },
  })

export const integer = (description: string, defaultValue: number, min: number, max: number) =>
  make<number>({
    description,
    defaultValue,
    defaultText: String(defaultValue),
    valueName: "int",
    decode: (raw) => {
      // Digits only: Number() would also take "1e3", "0x10" and "" (as 0).
      const value =
        typeof raw === "number"
          ? raw
          : typeof raw === "string" && /^\s*-?\d+\s*$/.test(raw)
            ? Number(raw)
            : Number.NaN
      if (!Number.isInteger(value)) return Either.left("expected a whole number")
      if (value < min || value > max) return Either.left(`must be between ${min} and ${max}`)
      return Either.right(value)
    },
  })

const decodeBoolean = (raw: unknown): Either.Either<boolean, string> => {
  if (typeof raw === "boolean") return Either.right(raw)
  if (raw === "true") return Either.right(true)
  if (raw === "false") return Either.right(false)
  return Either.left("expected true or false")
}

export const boolean = (description: string, defaultValue: boolean) =>
  make<boolean>({
    description,
    defaultValue,
    defaultText: String(defaultValue),
    valueName: "bool",
    decode: decodeBoolean,
  })

/** A flag given alone to turn something on (--config.expand-env); off when absent. */
export const toggle = (description: string) =>
  make<boolean>({
    description,
    defaultValue: false,
    defaultText: "",
    valueName: "",
    takesValue: false,
    decode: decodeBoolean,
  })

export const choice = <const L extends string>(
  description: string,
  values: ReadonlyArray<L>,
  defaultValue: L,
) =>
  make<L>({
    description,
    defaultValue,
    defaultText: defaultValue,
    valueName: values.join("|"),
    decode: (raw) =>
      typeof raw === "string" && (values as ReadonlyArray<string>).includes(raw)
        ? Either.right(raw as L)
        : Either.left(`expected one of ${values.join(", ")}`),
  })

const listOf = <A>(
  description: string,
  decodeItem: (item: string) => Either.Either<A, string>,
  valueName: string,
  secret: boolean,
  defaults: ReadonlyArray<A> = [],
) =>
  make<ReadonlyArray<A>>({
    description,
    defaultValue: defaults,
    defaultText: defaults.join(", "),
    valueName,
    repeated: true,
    commaSeparated: true,
    secret,
    decode: (raw) => {
      // Items are text: a number where a name or an address belongs is a mistake, not a one-item list.
      const items: ReadonlyArray<unknown> = Array.isArray(raw) ? raw : [raw]
      const texts: Array<string> = []
      for (const item of items) {
        if (typeof item !== "string")
          return Either.left("expected a list of strings (a sequence, or one comma-separated string)")
        for (const part of item.split(",")) if (part.trim() !== "") texts.push(part.trim())
      }
      const decoded: Array<A> = []
      for (const [i, text] of texts.entries()) {
        const result = decodeItem(text)
        // A secret is named by its position, never quoted.
        if (Either.isLeft(result))
          return Either.left(`${secret ? `item ${i + 1}` : `"${text}"`}: ${result.left}`)
        decoded.push(result.right)
      }
      return Either.right(decoded)
    },
  })

/**
 * A list: a YAML sequence, or flags given as a comma-separated list and/or repeated. Each item goes through
 * `decodeItem`.
 */
export const list = <A>(
  description: string,
  decodeItem: (item: string) => Either.Either<A, string>,
  valueName = "list",
) => listOf(description, decodeItem, valueName, false)

/** A list of secrets (redacted wherever printed); `check` returns what is wrong with an item, or undefined. */
export const secretList = (description: string, check: (item: string) => string | undefined) =>
  listOf(
    description,
    (item) => {
      const problem = check(item)
      return problem === undefined ? Either.right(item) : Either.left(problem)
    },
    "key",
    true,
  )

/** A flag that may be repeated, each value taken whole (commas included), e.g. --header "Accept: a, b". */
export const repeatedText = (description: string, valueName = "text") =>
  make<ReadonlyArray<string>>({
    description,
    defaultValue: [],
    defaultText: "",
    valueName,
    repeated: true,
    decode: (raw) => {
      const items: ReadonlyArray<unknown> = Array.isArray(raw) ? raw : [raw]
      return items.every((item) => typeof item === "string")
        ? Either.right(items as ReadonlyArray<string>)
        : Either.left("expected text")
    },
  })

/** A list of strings; an empty flag value (`--flag=`) gives an empty list, replacing `defaults`. */
export const stringList = (description: string, defaults: ReadonlyArray<string> = []) =>
  listOf(description, (item) => Either.right(item), "list", false, defaults)
