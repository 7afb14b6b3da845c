import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import * as AccessLog from "../src/AccessLog.js"
import { EndpointId } from "../src/Domain/EndpointId.js"
import { exchangeOf } from "./support/exchange.js"

const dir = mkdtempSync(join(tmpdir(), "pico-access-unit-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const exchange = (url = "/search?token=query-secret") => {
  const result = exchangeOf({ method: "GET", url, headers: {}, socket: { remoteAddress: "::ffff:10.0.0.7" } })
  result.requestId = "rid"
  result.endpointId = EndpointId("e")
  return result
}

/** The lines one exchange writes with these settings, read after the log has closed (which flushes it). */
const linesWith = async (settings: Omit<AccessLog.AccessLogSettings, "file">, name: string, url?: string) => {
  const file = join(dir, name)
  await Effect.runPromise(
    Effect.scoped(
      Effect.map(AccessLog.make({ ...settings, file }, "node-1"), (log) => log?.(exchange(url), 200)),
    ),
  )
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

describe("the access log", () => {
  it("drops the query string unless configured to keep it", async () => {
    const [dropped] = await linesWith({ enabled: true, query: false }, "dropped.log")
    expect(dropped).toMatchObject({
      path: "/search",
      "client-addr": "10.0.0.7",
      route: "none",
      "upstream-ms": -1,
    })
    const [kept] = await linesWith({ enabled: true, query: true }, "kept.log")
    expect(kept?.path).toBe("/search?token=query-secret")
  })

  it("leaves out the userinfo of a target it could not rewrite to origin-form: it is a credential", async () => {
    const lines = await Promise.all(
      ["ftp://alice:s3cretpw@b.example/x", "HTTP://bob@b.example", "carol:pw@c.example/y", "*", "/a@b"].map(
        (target, i) => linesWith({ enabled: true, query: true }, `userinfo-${i}.log`, target),
      ),
    )
    expect(lines.map(([line]) => line?.path)).toEqual([
      "ftp://b.example/x",
      "HTTP://b.example",
      "c.example/y",
      "*",
      "/a@b",
    ])
  })

  it("writes every field as JSON, escaping what a client put in the path", async () => {
    const path = '/a"b\\c\u00e9\u2028/d'
    const [line] = await linesWith({ enabled: true, query: false }, "escaped.log", path)
    expect(line).toEqual({
      level: "info",
      ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      subsystem: "access",
      msg: "request",
      "node-id": "node-1",
      "request-id": "rid",
      "endpoint-id": "e",
      method: "GET",
      path,
      status: 200,
      "bytes-in": 0,
      "bytes-out": 0,
      "duration-ms": expect.any(Number),
      "upstream-ms": -1,
      route: "none",
      "client-addr": "10.0.0.7",
    })
  })

  it("writes nothing when off", async () => {
    expect(await linesWith({ enabled: false, query: false }, "off.log").catch(() => "no file")).toBe(
      "no file",
    )
  })

  it("fails at the start, naming the flag, when the file cannot be opened", async () => {
    const error = await Effect.runPromise(
      Effect.scoped(
        AccessLog.make({ enabled: true, query: false, file: join(dir, "missing/access.log") }, "n"),
      ).pipe(Effect.flip),
    )
    expect(error.message).toBe(`--access-log.file ${join(dir, "missing/access.log")}: no such file`)
  })
})
