// Start-up time of the short-lived `pico` commands: `--version`, `--help` and `status cluster nodes` against
// a running node. These are typed by people, so they should answer well under the 300 ms target.
//
// Run with `npm run bench:startup` (or `node bench/startup.mjs` after `npm run build`); `npm run bench` runs it
// last. Each command is run BENCH_STARTUP_RUNS times (20) after 3 unmeasured warm-ups, one process at a time, and
// timed from spawn to exit: what a user waits for. It exits 0 whenever it measured, like the other benches: the
// PASS/FAIL lines are for information. Plain ESM JavaScript, like the other benches.

import { spawn, spawnSync } from "node:child_process"
import path from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const PICO_JS = process.env.BENCH_PICO_JS || path.join(ROOT, "dist", "bin", "pico.js")
const RUNS = Number(process.env.BENCH_STARTUP_RUNS || 20)
const WARMUPS = 3
const TARGET_MS = 300

/** Starts a node on loopback ports and resolves its admin URL once it listens. */
const startServer = () =>
  new Promise((resolve, reject) => {
    const loopback = ["proxy", "upstream", "admin", "gossip"].flatMap((port) => [
      `--${port}.bind-addr`,
      "127.0.0.1:0",
    ])
    const server = spawn(process.execPath, [PICO_JS, "server", ...loopback], {
      stdio: ["ignore", "ignore", "pipe"],
    })
    let pending = ""
    server.stderr.on("data", (chunk) => {
      pending += chunk
      const lines = pending.split("\n")
      pending = lines.pop()
      for (const line of lines) {
        const record = JSON.parse(line)
        if (record.msg === "admin listening") resolve({ server, adminUrl: `http://${record.addr}` })
      }
    })
    server.on("exit", (code) => reject(new Error(`pico server exited with ${code} before listening`)))
  })

const timeOnce = (args) => {
  const start = process.hrtime.bigint()
  const run = spawnSync(process.execPath, [PICO_JS, ...args], { stdio: ["ignore", "ignore", "pipe"] })
  const elapsed = Number(process.hrtime.bigint() - start) / 1e6
  if (run.status !== 0) throw new Error(`pico ${args.join(" ")} exited ${run.status}: ${run.stderr}`)
  return elapsed
}

const measure = (args) => {
  for (let i = 0; i < WARMUPS; i++) timeOnce(args)
  const times = Array.from({ length: RUNS }, () => timeOnce(args)).sort((a, b) => a - b)
  const mean = times.reduce((sum, time) => sum + time, 0) / times.length
  return { mean, min: times[0], median: times[Math.floor(times.length / 2)], max: times[times.length - 1] }
}

const { server, adminUrl } = await startServer()
try {
  const commands = [["--version"], ["--help"], ["status", "cluster", "nodes", "--server.url", adminUrl]]
  console.log(`node ${process.version}, ${RUNS} runs each, milliseconds from spawn to exit`)
  console.log("command                          mean  median     min     max")
  for (const args of commands) {
    const { mean, median, min, max } = measure(args)
    const label = args.slice(0, 3).join(" ").padEnd(28)
    const verdict = mean < TARGET_MS ? "PASS" : "FAIL"
    console.log(
      `${label} ${[mean, median, min, max].map((time) => time.toFixed(0).padStart(7)).join(" ")}  ${verdict} (< ${TARGET_MS} ms)`,
    )
  }
} finally {
  server.kill("SIGTERM")
}
