// Idle upstream sessions on one server: starts `pico server`, opens N real WebSocket sessions to its upstream
// port (one endpoint each, no traffic) at up to RATE per second, then reports how fast they opened and what the
// server holds for them (RSS, JS heap), and checks that every endpoint is registered. See bench/README.md.
//   node bench/sessions.mjs [N=10000] [RATE=2000]      (after npm run build)
// SERVER_CPUS=0 pins the server to those CPUs with taskset (run this script itself on another, as the other
// benchmarks pin the load generator).
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import WebSocket from "ws"

const [count = 10_000, rate = 2_000] = process.argv.slice(2).map(Number)
const base = 27_000 + Math.floor(Math.random() * 200) * 10
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const pin = process.env.SERVER_CPUS === undefined ? [] : ["taskset", "-c", process.env.SERVER_CPUS]
const [command, ...prefix] = [...pin, process.execPath]
const server = spawn(
  command,
  [
    ...prefix,
    "dist/bin/pico.js",
    "server",
    ...["--proxy.bind-addr", `127.0.0.1:${base + 1}`, "--upstream.bind-addr", `127.0.0.1:${base + 2}`],
    ...["--admin.bind-addr", `127.0.0.1:${base + 3}`, "--gossip.bind-addr", `127.0.0.1:${base + 4}`],
    ...["--log.level", "warn", "--access-log.enabled", "false"],
  ],
  { stdio: ["ignore", "ignore", "inherit"] },
)
const admin = `http://127.0.0.1:${base + 3}`
const rssMiB = () => {
  // taskset execs node, so the pid is the server's either way.
  const line = readFileSync(`/proc/${server.pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)
  return line === null ? Number.NaN : Math.round(Number(line[1]) / 1024)
}
const heapMiB = async () => {
  const metrics = await (await fetch(`${admin}/metrics`)).text()
  return Math.round(Number(metrics.match(/^nodejs_heap_size_used_bytes (\S+)/m)?.[1]) / 2 ** 20)
}

try {
  for (let tries = 0; ; tries++) {
    if (tries > 100) throw new Error("the server did not start")
    if (
      await fetch(`${admin}/health`).then(
        (res) => res.ok,
        () => false,
      )
    )
      break
    await sleep(100)
  }
  const idle = { rssMiB: rssMiB(), heapMiB: await heapMiB() }
  const sockets = []
  let open = 0
  let failed = 0
  const started = performance.now()
  const allSettled = new Promise((resolve) => {
    const settled = () => open + failed === count && resolve()
    let next = 0
    const batch = Math.max(1, Math.round(rate / 100))
    const timer = setInterval(() => {
      for (let i = 0; i < batch && next < count; i++, next++) {
        const ws = new WebSocket(`ws://127.0.0.1:${base + 2}/pico/v1/listener/ep-${next}`, {
          perMessageDeflate: false,
        })
        ws.on("open", () => {
          open++
          settled()
        })
        ws.on("error", () => {
          failed++
          settled()
        })
        // Yamux pings and window updates arrive as messages; the tunnel's pings need no answer for this probe.
        ws.on("message", () => {})
        sockets.push(ws)
      }
      if (next === count) clearInterval(timer)
    }, 10)
  })
  await allSettled
  const seconds = (performance.now() - started) / 1000
  await sleep(3_000)
  const endpoints = Object.keys(await (await fetch(`${admin}/status/proxy/endpoints`)).json()).length
  const held = { rssMiB: rssMiB(), heapMiB: await heapMiB() }
  console.log(
    JSON.stringify({
      sessions: count,
      open,
      failed,
      endpointsRegistered: endpoints,
      perSecond: Math.round(open / seconds),
      idle,
      held,
      perSessionKiB: Math.round(((held.rssMiB - idle.rssMiB) * 1024) / count),
    }),
  )
  for (const ws of sockets) ws.terminate()
} finally {
  server.kill("SIGKILL")
}
