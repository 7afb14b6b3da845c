import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import { makeKeyring } from "../src/ClusterKeys.js"
import { formatHostPort } from "../src/Domain/Address.js"
import { parseAgentEndpoint } from "../src/PicoConfig/Agent.js"
import { formatGoDuration, parseGoDuration } from "../src/PicoConfig/Duration.js"
import { expandEnv } from "../src/PicoConfig/ExpandEnv.js"
import { loadClusterKeys } from "../src/PicoConfig/KeyMaterial.js"
import { agentSettings, load, redacted, serverConfigProblem, serverSettings } from "../src/PicoConfig.js"

const writeConfig = (text: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), "pico-config-")), "pico.yaml")
  writeFileSync(path, text)
  return path
}

const failureMessage = <A, E extends { message: string }>(effect: Effect.Effect<A, E>) =>
  effect.pipe(
    Effect.flip,
    Effect.map((error) => error.message),
  )

describe("Go durations", () => {
  it("parses the forms Go prints and accepts", () => {
    expect(parseGoDuration("15s")).toBe(15_000)
    expect(parseGoDuration("500ms")).toBe(500)
    expect(parseGoDuration("1m")).toBe(60_000)
    expect(parseGoDuration("1h30m")).toBe(5_400_000)
    expect(parseGoDuration("1.5s")).toBe(1500)
    expect(parseGoDuration("0")).toBe(0)
  })

  it("rejects what is not a duration", () => {
    for (const text of ["", "15", "15x", "s", "1 m", "-1s", "15s junk"])
      expect(parseGoDuration(text)).toBeUndefined()
  })

  it("formats for help text", () => {
    expect(formatGoDuration(15_000)).toBe("15s")
    expect(formatGoDuration(60_000)).toBe("1m")
    expect(formatGoDuration(500)).toBe("500ms")
  })
})

describe("environment expansion", () => {
  const env = { HOST: "10.0.0.1", EMPTY: "", PICO_VAL1: "val1" }

  it("expands ${VAR}, $VAR and ${VAR:default}", () => {
    expect(expandEnv("a: ${HOST}:8000", env)).toBe("a: 10.0.0.1:8000")
    expect(expandEnv("a: $PICO_VAL1/x", env)).toBe("a: val1/x")
    expect(expandEnv("a: ${MISSING:5}", env)).toBe("a: 5")
    expect(expandEnv("a: ${EMPTY:fallback}", env)).toBe("a: fallback")
    expect(expandEnv("a: ${MISSING:x:y}", env)).toBe("a: x:y")
    expect(expandEnv("a: ${MISSING}", env)).toBe("a: ")
  })

  it("keeps a lone $ and turns $$ into $", () => {
    expect(expandEnv("price: 5$ and $$HOST", env)).toBe("price: 5$ and $HOST")
  })
})

describe("loading settings", () => {
  it.effect("uses the defaults when nothing is given", () =>
    Effect.gen(function* () {
      const config = yield* load(serverSettings, { flags: {} })
      expect(formatHostPort(config.proxy.bindAddr)).toBe(":8000")
      expect(Duration.toMillis(config.proxy.gatewayTimeout)).toBe(15_000)
      expect(Duration.toMillis(config.server.gracefulShutdownTimeout)).toBe(60_000)
      expect(config.log.level).toBe("info")
    }),
  )

  it.effect("takes flags over the file over the defaults", () =>
    Effect.gen(function* () {
      const path = writeConfig(
        "proxy:\n  bind_addr: 127.0.0.1:9000\n  gateway_timeout: 3s\nlog:\n  subsystems: [proxy, tunnel]\n",
      )
      const config = yield* load(serverSettings, {
        flags: { "proxy.gateway-timeout": "7s" },
        configPath: path,
      })
      expect(formatHostPort(config.proxy.bindAddr)).toBe("127.0.0.1:9000")
      expect(Duration.toMillis(config.proxy.gatewayTimeout)).toBe(7000)
      expect(formatHostPort(config.upstream.bindAddr)).toBe(":8001")
      expect(config.log.subsystems).toEqual(["proxy", "tunnel"])
    }),
  )

  it.effect("expands the environment only when asked", () =>
    Effect.gen(function* () {
      const path = writeConfig("proxy:\n  bind_addr: ${PICO_TEST_ADDR:127.0.0.1:7000}\n")
      const expanded = yield* load(serverSettings, { flags: {}, configPath: path, expandEnv: true, env: {} })
      expect(formatHostPort(expanded.proxy.bindAddr)).toBe("127.0.0.1:7000")
      const raw = yield* failureMessage(load(serverSettings, { flags: {}, configPath: path }))
      expect(raw).toContain("proxy.bind_addr")
    }),
  )

  it.effect("names the flag and the value of a bad flag", () =>
    Effect.gen(function* () {
      const message = yield* failureMessage(
        load(serverSettings, { flags: { "proxy.gateway-timeout": "15x" } }),
      )
      expect(message).toBe(
        '--proxy.gateway-timeout: invalid value "15x": expected a duration such as 500ms, 15s or 1m',
      )
    }),
  )

  it.effect("names the key, the file and the value of a bad file entry", () =>
    Effect.gen(function* () {
      const path = writeConfig("log:\n  level: loud\n")
      const message = yield* failureMessage(load(serverSettings, { flags: {}, configPath: path }))
      expect(message).toBe(
        `log.level in ${path}: invalid value "loud": expected one of debug, info, warn, error`,
      )
    }),
  )

  it.effect("rejects unknown keys, naming them", () =>
    Effect.gen(function* () {
      const path = writeConfig("proxy:\n  bind_adr: :8000\nmystery: 1\n")
      const message = yield* failureMessage(load(serverSettings, { flags: {}, configPath: path }))
      expect(message).toBe(`${path}: unknown key "proxy.bind_adr", "mystery"`)
    }),
  )

  it.effect(
    "rejects a section or a list given another type, naming the key, the file and what was expected",
    () =>
      Effect.gen(function* () {
        const cases: ReadonlyArray<readonly [string, string]> = [
          [
            "proxy: 5\n",
            "proxy in PATH: invalid value 5: expected a mapping of settings (bind_addr, gateway_timeout, ...)",
          ],
          ["proxy: [1, 2]\n", "proxy in PATH: invalid value [1,2]: expected a mapping of settings"],
          ["proxy:\n  auth: 3\n", "proxy.auth in PATH: invalid value 3: expected a mapping of settings"],
          [
            "log:\n  subsystems: 5\n",
            "log.subsystems in PATH: invalid value 5: expected a list of strings (a sequence, or one comma-separated string)",
          ],
          [
            "cluster:\n  join: [10.0.0.1, 7]\n",
            'cluster.join in PATH: invalid value ["10.0.0.1",7]: expected a list',
          ],
        ]
        for (const [yaml, expected] of cases) {
          const path = writeConfig(yaml)
          const message = yield* failureMessage(load(serverSettings, { flags: {}, configPath: path }))
          expect(message).toContain(expected.replace("PATH", path))
        }
      }),
  )

  it.effect("reports unreadable and unparsable files", () =>
    Effect.gen(function* () {
      const missing = yield* failureMessage(
        load(serverSettings, { flags: {}, configPath: "/nonexistent/pico.yaml" }),
      )
      expect(missing).toBe("--config.path /nonexistent/pico.yaml: no such file")
      const path = writeConfig("proxy: [unclosed\n")
      const broken = yield* failureMessage(load(serverSettings, { flags: {}, configPath: path }))
      expect(broken).toBe(
        `parse ${path}: line 2, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]`,
      )
    }),
  )

  it.effect("places a YAML problem by line and column, never quoting the line, which may hold a secret", () =>
    Effect.gen(function* () {
      const secret = "supersecretvalue123"
      const cases: Array<[string, string]> = [
        [
          `auth:\n  token_hmac_secret_key: ${secret}\n   bad_indent: x\n`,
          "line 2, column 26: Nested mappings are not allowed in compact mappings",
        ],
        [`auth:\n  token_hmac_secret_key: "${secret}\n`, 'line 3, column 1: Missing closing "quote'],
        [
          "log:\n  level: info\n---\nlog:\n  level: warn\n",
          "line 3, column 1: more than one YAML document (---) in one file",
        ],
        // A warning to the library, which would print it outside the log and take the file.
        [
          `auth:\n  token_hmac_secret_key: !${secret}\n`,
          "line 2, column 26: unknown tag (a value that starts with ! needs quotes)",
        ],
        [
          `auth:\n  token_hmac_secret_key: |${secret}\n`,
          "line 2, column 27: unexpected text (a value that starts with | > ! * & % @ or ` needs quotes)",
        ],
        [
          `auth:\n  token_hmac_secret_key: *${secret}\n`,
          "an alias (*) to no anchor (a value that starts with * needs quotes)",
        ],
      ]
      for (const [text, problem] of cases) {
        const path = writeConfig(text)
        const message = yield* failureMessage(load(serverSettings, { flags: {}, configPath: path }))
        expect(message).toBe(`parse ${path}: ${problem}`)
        expect(message).not.toContain(secret)
      }
    }),
  )

  it.effect("rejects a zero duration, one longer than a timer can wait, and a bad bind address", () =>
    Effect.gen(function* () {
      const zero = yield* failureMessage(
        load(serverSettings, { flags: { "server.graceful-shutdown-timeout": "0" } }),
      )
      expect(zero).toContain("must be greater than zero")
      // Past Node's longest timer a timeout would fire at once.
      const tooLong = yield* failureMessage(
        load(serverSettings, { flags: { "proxy.gateway-timeout": "1000h" } }),
      )
      expect(tooLong).toBe('--proxy.gateway-timeout: invalid value "1000h": must be at most 596h31m23.647s')
      const longest = yield* load(serverSettings, { flags: { "proxy.gateway-timeout": "596h31m23.647s" } })
      expect(Duration.toMillis(longest.proxy.gatewayTimeout)).toBe(2_147_483_647)
      for (const notDigits of ["1e3", "0x10", ""]) {
        const count = yield* failureMessage(
          load(serverSettings, { flags: { "proxy.max-connections": notDigits } }),
        )
        expect(count).toBe(`--proxy.max-connections: invalid value "${notDigits}": expected a whole number`)
      }
      for (const unreachable of ["127.0.0.1:0", ":8003", "0.0.0.0:8003", "[::]:8003"]) {
        const advertised = yield* failureMessage(
          load(serverSettings, { flags: { "gossip.advertise-addr": unreachable } }),
        )
        expect(advertised).toBe(
          `--gossip.advertise-addr: invalid value "${unreachable}": expected an address others can reach, such as "10.0.0.5:8003" (a host, and a port other than 0)`,
        )
      }
      const addr = yield* failureMessage(load(serverSettings, { flags: { "admin.bind-addr": "8002" } }))
      expect(addr).toBe(
        '--admin.bind-addr: invalid value "8002": expected an address such as ":8000" or "127.0.0.1:8000"',
      )
    }),
  )
})

describe("the startup log", () => {
  it.effect("writes the configuration as a YAML file would, durations as 15s, secrets redacted", () =>
    Effect.gen(function* () {
      const config = yield* load(serverSettings, { flags: { "auth.token-hmac-secret-key": "s3cret" } })
      const logged = redacted(serverSettings, config) as Record<string, Record<string, unknown>>
      expect(logged.proxy?.gateway_timeout).toBe("15s")
      expect(logged.server?.graceful_shutdown_timeout).toBe("1m")
      expect(logged.gossip?.interval).toBe("500ms")
      expect(logged.auth?.token_hmac_secret_key).toBe("(redacted)")
      expect(JSON.stringify(logged)).not.toContain("s3cret")
    }),
  )
})

describe("cluster settings", () => {
  it.effect("refuse a node id together with a node id prefix", () =>
    Effect.gen(function* () {
      const flags = { "cluster.node-id": "node-1", "cluster.node-id-prefix": "pico-" }
      const message = yield* failureMessage(load(serverSettings, { flags }, serverConfigProblem))
      expect(message).toBe("--cluster.node-id and --cluster.node-id-prefix cannot both be set")
    }),
  )

  it.effect("take join lists and a boolean given as text", () =>
    Effect.gen(function* () {
      const config = yield* load(serverSettings, {
        flags: {
          "cluster.join": ["10.0.0.1,pico.ns.svc:8003", "[::1]:8003"],
          "cluster.abort-if-join-fails": "false",
        },
      })
      expect(config.cluster.join).toEqual(["10.0.0.1", "pico.ns.svc:8003", "[::1]:8003"])
      expect(config.cluster.abortIfJoinFails).toBe(false)
      expect(Duration.toMillis(config.gossip.interval)).toBe(500)
    }),
  )
})

describe("gossip keys", () => {
  const keyA = "a".repeat(32)
  const keyB = "b".repeat(40)
  const short = "too-short-secret"

  it.effect("take comma-separated and repeated flags, YAML sequences and env-expanded scalars", () =>
    Effect.gen(function* () {
      const flags = yield* load(serverSettings, {
        flags: { "gossip.secret-key": [`${keyA},${keyB}`, "file:/etc/pico/keys"] },
      })
      expect(flags.gossip.secretKey).toEqual([keyA, keyB, "file:/etc/pico/keys"])
      const sequence = writeConfig(`gossip:\n  secret_key:\n    - ${keyA}\n    - file:/k\n`)
      expect((yield* load(serverSettings, { flags: {}, configPath: sequence })).gossip.secretKey).toEqual([
        keyA,
        "file:/k",
      ])
      const expanded = writeConfig("gossip:\n  secret_key: ${PICO_GOSSIP_KEYS}\n")
      const config = yield* load(serverSettings, {
        flags: {},
        configPath: expanded,
        expandEnv: true,
        env: { PICO_GOSSIP_KEYS: `${keyB},${keyA}` },
      })
      expect(config.gossip.secretKey).toEqual([keyB, keyA])
      expect((yield* load(serverSettings, { flags: {} })).gossip.secretKey).toEqual([])
    }),
  )

  it.effect("name the flag or key and the item's position, never the value", () =>
    Effect.gen(function* () {
      const flag = yield* failureMessage(
        load(serverSettings, { flags: { "gossip.secret-key": [`${keyA},${short}`] } }),
      )
      expect(flag).toBe(
        "--gossip.secret-key: invalid value (redacted): item 2: must be at least 32 characters (make one with: openssl rand -base64 32)",
      )
      const path = writeConfig(`gossip:\n  secret_key: [${short}]\n`)
      const file = yield* failureMessage(load(serverSettings, { flags: {}, configPath: path }))
      expect(file).toContain(`gossip.secret_key in ${path}: invalid value (redacted): item 1:`)
      const noPath = yield* failureMessage(load(serverSettings, { flags: { "gossip.secret-key": "file:" } }))
      expect(noPath).toBe("--gossip.secret-key: invalid value (redacted): item 1: file: needs a path")
      for (const message of [flag, file]) expect(message).not.toContain(short)
    }),
  )

  it.effect("are redacted key by key in the printed config, and an empty list stays empty", () =>
    Effect.gen(function* () {
      const keyed = yield* load(serverSettings, { flags: { "gossip.secret-key": [keyA, keyB] } })
      const printed = redacted(serverSettings, keyed)
      expect(printed.gossip).toMatchObject({ secret_key: ["(redacted)", "(redacted)"] })
      expect(JSON.stringify(printed)).not.toContain(keyA)
      const unkeyed = redacted(serverSettings, yield* load(serverSettings, { flags: {} }))
      expect(unkeyed.gossip).toMatchObject({ secret_key: [] })
      expect(unkeyed.auth).toMatchObject({ token_hmac_secret_key: "" })
    }),
  )

  it.effect("load from files, one key per line, into a keyring with the first key first", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "pico-keys-"))
      const keys = join(dir, "keys")
      writeFileSync(keys, `${keyB}\n\n${keyA}\r\n`)
      const keyring = yield* loadClusterKeys([keyA, `file:${keys}`], "gossip.secret-key")
      expect(keyring?.size).toBe(3)
      // Subkeys in the order given: the inline key, then the file's, line by line.
      const [subkeyA, subkeyB] = makeKeyring([keyA, keyB]).subkeys("gossip")
      expect(keyring?.subkeys("gossip")).toEqual([subkeyA, subkeyB, subkeyA])
      expect(yield* loadClusterKeys([], "gossip.secret-key")).toBeUndefined()

      const bad = join(dir, "bad")
      writeFileSync(bad, `${keyA}\n${short}\n`)
      const badLine = yield* failureMessage(loadClusterKeys([`file:${bad}`], "gossip.secret-key"))
      expect(badLine).toBe(
        `--gossip.secret-key: ${bad} line 2: must be at least 32 characters (make one with: openssl rand -base64 32)`,
      )
      const empty = join(dir, "empty")
      writeFileSync(empty, "\n")
      expect(yield* failureMessage(loadClusterKeys([`file:${empty}`], "gossip.secret-key"))).toBe(
        `--gossip.secret-key: ${empty} holds no key`,
      )
      const missing = yield* failureMessage(loadClusterKeys([`file:${dir}/nope`], "gossip.secret-key"))
      expect(missing).toContain(`--gossip.secret-key: cannot read ${dir}/nope`)
    }),
  )
})

describe("agent endpoints", () => {
  it("accepts host:port, a bare port and an http URL, all plain HTTP", () => {
    expect(parseAgentEndpoint("my-endpoint/localhost:4000")).toEqual(
      Either.right({ id: "my-endpoint", host: "localhost", port: 4000, scheme: "http" }),
    )
    expect(parseAgentEndpoint("a/4000")).toEqual(
      Either.right({ id: "a", host: "localhost", port: 4000, scheme: "http" }),
    )
    expect(parseAgentEndpoint("a/http://10.0.0.2:8080")).toEqual(
      Either.right({ id: "a", host: "10.0.0.2", port: 8080, scheme: "http" }),
    )
    expect(parseAgentEndpoint("a/http://[::1]:8080")).toEqual(
      Either.right({ id: "a", host: "::1", port: 8080, scheme: "http" }),
    )
    expect(parseAgentEndpoint("a/http://localhost")).toEqual(
      Either.right({ id: "a", host: "localhost", port: 80, scheme: "http" }),
    )
  })

  it("accepts an https URL: TLS to the service, port 443 unless given", () => {
    expect(parseAgentEndpoint("api/https://localhost:8443")).toEqual(
      Either.right({ id: "api", host: "localhost", port: 8443, scheme: "https" }),
    )
    expect(parseAgentEndpoint("api/https://internal.example.com")).toEqual(
      Either.right({ id: "api", host: "internal.example.com", port: 443, scheme: "https" }),
    )
    expect(parseAgentEndpoint("api/https://[::1]:8443")).toEqual(
      Either.right({ id: "api", host: "::1", port: 8443, scheme: "https" }),
    )
    expect(parseAgentEndpoint("api/ftp://localhost:21")).toEqual(
      Either.left("address must be host:port, a port, or an http://, https:// or tcp:// URL"),
    )
  })

  it("accepts a tcp URL, which makes a TCP endpoint and must name its port", () => {
    expect(parseAgentEndpoint("db/tcp://localhost:5432")).toEqual(
      Either.right({ id: "db", host: "localhost", port: 5432, scheme: "tcp" }),
    )
    expect(parseAgentEndpoint("ssh/tcp://[::1]:22")).toEqual(
      Either.right({ id: "ssh", host: "::1", port: 22, scheme: "tcp" }),
    )
    expect(parseAgentEndpoint("db/tcp://localhost")).toEqual(
      Either.left("a tcp:// address needs a port, e.g. tcp://localhost:5432"),
    )
  })

  it("rejects malformed entries", () => {
    for (const text of [
      "no-slash",
      "/localhost:4000",
      "bad id/localhost:4000",
      "a/localhost",
      "a/host:99999",
    ]) {
      expect(Either.isLeft(parseAgentEndpoint(text))).toBe(true)
    }
  })

  it.effect("splits comma-separated and repeated flags", () =>
    Effect.gen(function* () {
      const config = yield* load(agentSettings, {
        flags: { endpoints: ["a/4000,b/localhost:5000", "c/6000"] },
      })
      expect(config.endpoints.map((endpoint) => endpoint.id)).toEqual(["a", "b", "c"])
      const message = yield* failureMessage(load(agentSettings, { flags: { endpoints: ["a/4000,broken"] } }))
      expect(message).toContain(
        '--endpoints: invalid value ["a/4000,broken"]: "broken": expected <endpoint id>/<address>',
      )
    }),
  )
})
