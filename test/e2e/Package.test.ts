import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { request, waitFor } from "../support/http.js"
import { listeningPort, picoPerTest } from "../support/process.js"
import { startTcpService } from "../support/tcp.js"

const run = promisify(execFile)
const root = fileURLToPath(new URL("../../", import.meta.url))
const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly name: string
  readonly version: string
}
const libraryDoc = readFileSync(join(root, "docs/library.md"), "utf8")

/** docs/library.md's examples by file name: each is a js block under a "`name.mjs`:" line. */
const examples = new Map(
  [...libraryDoc.matchAll(/^`([\w-]+\.mjs)`:\n\n```js\n([\s\S]*?)```$/gm)].map(
    ([, name, code]) => [name as string, code as string] as const,
  ),
)

/** The install command docs/library.md gives, with the packed tarball in place of the registry's package. */
const installArgs = (tarball: string) => {
  const command = /^npm install (pico-tunnel .*)$/m.exec(libraryDoc)?.[1]
  expect(command, "docs/library.md gives an npm install command").toBeDefined()
  return (command as string).split(" ").map((word) => (word === packageJson.name ? tarball : word))
}

// The local npm cache serves the dependencies when it has them; the registry only what it lacks.
const npmFlags = ["--prefer-offline", "--no-audit", "--no-fund"]

const { node, cleanups } = picoPerTest(afterEach)
let work: string
let app: string
let tarball: string

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "pico-package-"))
  // npm test has just built dist/, so the tarball holds what would be published.
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--pack-destination", work], { cwd: root })
  tarball = join(work, stdout.trim().split("\n").pop() as string)
  app = join(work, "app")
  mkdirSync(app)
  await run("npm", ["init", "--yes"], { cwd: app })
  await run("npm", ["install", ...npmFlags, ...installArgs(tarball)], { cwd: app })
}, 120_000)

afterAll(() => rmSync(work, { recursive: true, force: true }))

describe(`the ${packageJson.name} package, installed from its tarball into an empty project`, () => {
  const installedPico = () => join(app, "node_modules", packageJson.name, "dist/bin/pico.js")

  it("provides the pico command", async () => {
    const { stdout } = await run("npx", ["pico", "--version"], { cwd: app })
    expect(stdout).toBe(`${packageJson.version}\n`)
  })

  it("lets npm refuse an Effect it does not support", async () => {
    const other = join(work, "effect4")
    mkdirSync(other)
    await run("npm", ["init", "--yes"], { cwd: other })
    const refused = await run("npm", ["install", "--dry-run", ...npmFlags, tarball, "effect@^4"], {
      cwd: other,
    }).then(
      () => "",
      (error: { stderr: string }) => error.stderr,
    )
    expect(refused).toContain("ERESOLVE")
  })

  it("runs docs/library.md's examples that swap one layer of each program, as written", async () => {
    for (const name of ["cluster-in-memory.mjs", "agent-in-memory.mjs", "status-canned.mjs"])
      writeFileSync(join(app, name), examples.get(name) as string)
    const outputs = await Promise.all(
      ["cluster-in-memory.mjs", "agent-in-memory.mjs", "status-canned.mjs"].map(async (name) => {
        const example = node(name, [], { cwd: app })
        expect(await example.exited, `${name}: ${example.text()}`).toBe(0)
        // Quiet, as the document shows them: no access log lines, no other log lines below the error level.
        expect(example.logs).toEqual([])
        return example.text()
      }),
    )
    expect(outputs[0]).toBe("answered through node 1 for /hello\n")
    expect(outputs[1]).toBe("the agent connected to ws://localhost:8001/pico/v1/listener/app\n")
    expect(outputs[2]).toBe(
      "nodes:\n- id: pico-1-abcdefg\n  status: active\n  proxy_addr: 10.0.0.1:8000\n  admin_addr: 10.0.0.1:8002\n" +
        "  endpoints: 1\n  upstreams: 2\n",
    )
  })

  it("compiles docs/library.md's examples as strict TypeScript, typed as the document says", async () => {
    // The document's sentence on TypeScript names what to add: these types, and skipLibCheck.
    const typed = (code: string) =>
      code
        .replace("const flags = (join) =>", "const flags = (join: string[]) =>")
        .replace("const node = (address, join) =>", "const node = (address: string, join: string[]) =>")
        .replace("const answers = {", "const answers: Record<string, unknown> = {")
    expect(libraryDoc.replace(/\s+/g, " ")).toContain(
      "`join: string[]`, `address: string`, `answers: Record<string, unknown>`",
    )
    // Inside the application, so the examples import the package it installed.
    const checked = join(app, "typescript")
    mkdirSync(checked)
    for (const [name, code] of examples)
      writeFileSync(join(checked, name.replace(/\.mjs$/, ".mts")), typed(code))
    writeFileSync(
      join(checked, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "nodenext",
          target: "es2022",
          noEmit: true,
          skipLibCheck: true,
          types: ["node"],
          typeRoots: [join(root, "node_modules/@types")],
        },
        include: ["*.mts"],
      }),
    )
    const tsc = join(root, "node_modules/typescript/bin/tsc")
    const result = await run(process.execPath, [tsc, "-p", checked]).then(
      () => "",
      (error: { stdout: string }) => error.stdout,
    )
    expect(result).toBe("")
  }, 60_000)

  it("runs docs/library.md's examples as written: a node from a YAML file, an embedded agent, custom auth", async () => {
    expect([...examples.keys()]).toEqual([
      "embed.mjs",
      "tcp-client.mjs",
      "own-auth.mjs",
      "server.mjs",
      "cluster-in-memory.mjs",
      "agent-in-memory.mjs",
      "status-canned.mjs",
    ])
    for (const [name, code] of examples) writeFileSync(join(app, name), code)

    // server.mjs reads the YAML file pico server --config.path would.
    writeFileSync(
      join(app, "server.yaml"),
      ["proxy", "upstream", "admin", "gossip"].map((port) => `${port}:\n  bind_addr: 127.0.0.1:0\n`).join(""),
    )
    const server = node("server.mjs", ["server.yaml"], { cwd: app })
    const proxyPort = await listeningPort(server, "proxy")
    const upstreamPort = await listeningPort(server, "upstream")
    const adminPort = await listeningPort(server, "admin")

    node("embed.mjs", [], { cwd: app, env: { PICO_SERVER_URL: `http://127.0.0.1:${upstreamPort}` } })
    await waitFor("the embedded service to answer through the proxy", async () => {
      const response = await request(`http://127.0.0.1:${proxyPort}/hi`, {
        headers: { "x-pico-endpoint": "my-service" },
      })
      return response.status === 200 && response.body === "hello from /hi"
    })
    const status = node(installedPico(), [
      "status",
      "proxy",
      "endpoints",
      "--server.url",
      `http://127.0.0.1:${adminPort}`,
    ])
    expect(await status.exited).toBe(0)
    expect(status.text()).toContain("my-service:")

    // tcp-client.mjs reads a TCP endpoint that an agent (the installed pico) serves from a local service.
    const clock = await startTcpService((socket) => socket.end("it is time"))
    cleanups.push(clock.close)
    const clockAgent = node(installedPico(), [
      ...["agent", "--endpoints", `clock/tcp://127.0.0.1:${clock.port}`],
      ...["--server.url", `http://127.0.0.1:${upstreamPort}`],
    ])
    await clockAgent.waitForLog("connected")
    const client = node("tcp-client.mjs", [], {
      cwd: app,
      env: { PICO_PROXY_URL: `http://127.0.0.1:${proxyPort}` },
    })
    expect(await client.exited, client.text()).toBe(0)
    expect(client.text()).toBe("it is time\n")

    const ownAuth = node("own-auth.mjs", [], { cwd: app })
    let ownUpstream = 0
    await waitFor("own-auth.mjs to print its ports", () => {
      ownUpstream = Number(/upstream port (\d+)/.exec(ownAuth.text())?.[1] ?? 0)
      return ownUpstream > 0
    })
    const refused = node(installedPico(), [
      "agent",
      "--endpoints",
      "private-app/4000",
      "--server.url",
      `http://127.0.0.1:${ownUpstream}`,
    ])
    expect(await refused.exited).toBe(1)
    expect(refused.logs.find((log) => log.level === "error")?.msg).toBe(
      "server refused the connection: endpoint not permitted",
    )
  })
})
