import { randomBytes } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { waitFor } from "../support/http.js"
import { picoPerTest } from "../support/process.js"

const { pico } = picoPerTest(afterEach)

const loopback = [
  ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
  ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
]
const newKey = () => randomBytes(32).toString("base64")
const unauthenticated = (log: Record<string, unknown>) =>
  log.level === "warn" && String(log.msg).startsWith("gossip is unauthenticated")

describe("pico server with gossip keys", () => {
  it("logs its keys redacted, one per key, and warns when it has none", async () => {
    const [inline, fromFile] = [newKey(), newKey()]
    const keyFile = join(mkdtempSync(join(tmpdir(), "pico-gossip-")), "keys")
    writeFileSync(keyFile, `${fromFile}\n`)
    const keyed = pico(["server", ...loopback, "--gossip.secret-key", `${inline},file:${keyFile}`])
    expect((await keyed.waitForLog("gossip listening")).keys).toBe(2)
    const starting = await keyed.waitForLog("starting pico server")
    expect((starting.config as { gossip: unknown }).gossip).toMatchObject({
      secret_key: ["(redacted)", "(redacted)"],
    })

    const unkeyed = pico(["server", ...loopback])
    await waitFor("the unauthenticated warning", () => unkeyed.logs.some(unauthenticated))
    expect((await unkeyed.waitForLog("starting pico server")).config).toMatchObject({
      gossip: { secret_key: [] },
    })

    await keyed.stop()
    expect(keyed.logs.some(unauthenticated)).toBe(false)
    const output = JSON.stringify(keyed.logs) + keyed.text()
    for (const key of [inline, fromFile]) expect(output).not.toContain(key)
  })

  it("exits 1 when its key is not the cluster's, saying why", async () => {
    const first = pico(["server", ...loopback, "--gossip.secret-key", newKey()])
    const gossipAddr = String((await first.waitForLog("gossip listening")).addr)
    const stranger = pico([
      "server",
      ...loopback,
      ...["--gossip.secret-key", newKey(), "--cluster.join", gossipAddr, "--cluster.join-timeout", "1s"],
    ])
    expect(await stranger.exited).toBe(1)
    expect(stranger.logs.find((log) => log.level === "error")?.msg).toBe(
      `join failed: ${gossipAddr}: refused: the peer has none of this node's keys (compare --gossip.secret-key)`,
    )
  })

  it("refuses a short key naming the flag and the key's place, never the key", async () => {
    const short = "not-nearly-long-enough"
    const inline = pico(["server", ...loopback, "--gossip.secret-key", `${newKey()},${short}`])
    expect(await inline.exited).toBe(1)
    expect(inline.text()).toContain(
      "invalid config: --gossip.secret-key: invalid value (redacted): item 2: must be at least 32 characters",
    )
    const keyFile = join(mkdtempSync(join(tmpdir(), "pico-gossip-")), "keys")
    writeFileSync(keyFile, `${newKey()}\n${short}\n`)
    const fromFile = pico(["server", ...loopback, "--gossip.secret-key", `file:${keyFile}`])
    expect(await fromFile.exited).toBe(1)
    expect(fromFile.text()).toContain(
      `invalid config: --gossip.secret-key: ${keyFile} line 2: must be at least 32`,
    )
    for (const run of [inline, fromFile]) expect(JSON.stringify(run.logs) + run.text()).not.toContain(short)
  })
})
