import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startJoinedPair, type TestNode } from "../support/node.js"
import { newClusterKey } from "../support/tokens.js"

const run = promisify(execFile)

/** Where this test leaves its screenshot (git ignores it; docs/images/ holds the one the docs show). */
const outputDir = fileURLToPath(new URL("../../test-output/console/", import.meta.url))

/**
 * Debian's chromium, never a downloaded build: .ci/run installs the package. A fresh profile each run, and
 * nothing that reaches out on its own.
 */
const chromiumFlags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
]

const cleanups: Array<() => Promise<void>> = []
const received: Array<string> = []
let first: TestNode
let second: TestNode
let browser: BrowserContext
let page: Page

beforeAll(async () => {
  const service = await startHttpServer((req, res) => {
    received.push(`${req.method} ${req.url}`)
    res.writeHead(200, { "content-type": "application/json" })
    res.end(JSON.stringify({ hello: "from the service", path: req.url }))
  })
  cleanups.push(service.close)
  const cluster = { "gossip.interval": "50ms", "gossip.secret-key": [newClusterKey()] }
  ;[first, second] = await startJoinedPair(cluster)
  cleanups.push(first.close, second.close)
  // The service's agent is on the second node; the console is opened on the first.
  const agent = startAgent(second.upstreamUrl, { e: service.port })
  cleanups.push(agent.stop)
  await waitFor("the first node routes e", () => first.routesRemotely("e"))

  const profile = mkdtempSync(join(tmpdir(), "pico-chromium-"))
  cleanups.push(async () => rmSync(profile, { recursive: true, force: true }))
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: chromiumFlags,
    viewport: { width: 1280, height: 900 },
  })
  cleanups.push(() => browser.close())
  page = browser.pages()[0] ?? (await browser.newPage())
}, 120_000)

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

describe("the web console, in Chromium", () => {
  it("shows the cluster, a request sent by curl live, its detail, and replays it", async () => {
    const errors: Array<string> = []
    page.on("pageerror", (error) => errors.push(error.message))
    await page.goto(`${first.adminUrl}/`)
    await page.getByRole("heading", { name: "Pico console" }).waitFor()
    // Both nodes, and the endpoint with its upstream on the second.
    for (const node of [first, second])
      await page.getByRole("cell", { name: node.nodeId, exact: true }).first().waitFor()
    await page.getByRole("button", { name: "Inspect e" }).click()
    await page.getByRole("button", { name: "Start capture" }).click()
    await page.getByText(`captured on ${[first.nodeId, second.nodeId].sort().join(", ")}`).waitFor()

    // A request from curl to the second node, which takes it, captures it and pushes it to the first.
    await run("curl", ["-s", "-H", "x-pico-endpoint: e", `${second.proxyUrl}/hello?from=curl`])
    const row = page.getByRole("button", { name: "GET /hello?from=curl", exact: true })
    await row.waitFor({ timeout: 10_000 })
    await row.click()
    await page.getByRole("heading", { name: "GET /hello?from=curl" }).waitFor()
    const meta = await page.locator("#detail-meta").textContent()
    expect(meta).toContain(`on ${second.nodeId}`)
    expect(meta).toContain("local via 127.0.0.1:")
    // The JSON response body, pretty-printed.
    await page.getByText('"hello": "from the service"').waitFor()

    await page.getByRole("button", { name: "Replay" }).click()
    await page.getByText(/^Replayed as [0-9a-f-]{36}: status 200$/).waitFor()
    expect(received).toEqual(["GET /hello?from=curl", "GET /hello?from=curl"])
    // The replay arrives in the list too, marked.
    await page.getByRole("button", { name: "GET /hello?from=curl (replay)" }).waitFor()
    expect(errors).toEqual([])
    mkdirSync(outputDir, { recursive: true })
    await page.screenshot({ path: join(outputDir, "console.png"), fullPage: true })
  })

  it("shows a binary body as a hex dump", async () => {
    const bytes = Buffer.from([0, 1, 2, 3, 0xff, 0x41, 0x42])
    const file = join(outputDir, "binary.bin")
    writeFileSync(file, bytes)
    await run("curl", [
      "-s",
      "-H",
      "x-pico-endpoint: e",
      "--data-binary",
      `@${file}`,
      `${second.proxyUrl}/binary`,
    ])
    await page.getByRole("button", { name: "POST /binary", exact: true }).click()
    await page.getByRole("heading", { name: "POST /binary" }).waitFor()
    // Offset, 16 bytes in hex (padded to the width of 16), then the printable ones.
    expect(await page.locator("#detail-request pre").textContent()).toBe(
      `00000000  ${"00 01 02 03 ff 41 42".padEnd(47)}  .....AB`,
    )
  })
})
