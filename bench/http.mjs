// Pico HTTP benchmark: direct nginx vs nginx reverse-proxy hop vs Pico tunnel.
//
// Run through `npm run bench` (bench/run installs nginx/wrk and builds Pico
// first). Plain ESM JavaScript on purpose: it must run without a build step,
// even when Pico's own sources do not compile.
//
// Env: BENCH_DURATION (default 10s), BENCH_WARMUP (default 2s),
//      BENCH_ONLY=baseline (skip Pico), NGINX_BIN (default: nginx on PATH).

import { spawn, spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import http from "node:http"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const WORK = path.join(ROOT, "bench", ".work")
const RUN = path.join(WORK, "run") // wiped on every run; results.json lives one level up
const PIDFILE = path.join(WORK, "pids") // read by bench/run's EXIT trap if we die uncleanly
const RESULTS = path.join(WORK, "results.json")
// Override to benchmark another build (used when testing the bench itself).
const PICO_JS = process.env.BENCH_PICO_JS || path.join(ROOT, "dist", "bin", "pico.js")
// Extra node flags for the Pico processes, e.g. BENCH_NODE_ARGS="--cpu-prof" to profile them.
const NODE_ARGS = (process.env.BENCH_NODE_ARGS || "").split(" ").filter((arg) => arg !== "")

const DURATION = process.env.BENCH_DURATION || "10s"
const WARMUP = process.env.BENCH_WARMUP || "2s"
const ONLY_BASELINE = process.env.BENCH_ONLY === "baseline"
const NGINX = process.env.NGINX_BIN || "nginx"
const WAIT_MS = 30_000 // bound for every readiness wait
const ENDPOINT = "bench" // Pico endpoint id the agent registers
const HEADERS = { "x-pico-endpoint": ENDPOINT }

const SIZES = { "1k": 1024, "1m": 1024 * 1024 }

// Cases, in report order. `metric` is what the ratios compare: small responses
// are bound by per-request overhead (req/s), large ones by bytes moved (MB/s).
const CASES = [
  { id: "1k_c1", label: "1 KiB  c1", file: "1k", threads: 1, conns: 1, metric: "rps" },
  { id: "1k_c50", label: "1 KiB  c50", file: "1k", threads: 2, conns: 50, metric: "rps" },
  { id: "1m_c8", label: "1 MiB  c8", file: "1m", threads: 2, conns: 8, metric: "mbps" },
]

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

class BenchError extends Error {}

// ---------------------------------------------------------------------------
// Child process bookkeeping: everything we start goes through start(), so that
// stopAll() (and the synchronous exit hook) can always tear it down.

const children = [] // { name, proc, logFile, exited: Promise }

function start(name, cmd, args, { logFile } = {}) {
  const out = logFile ? fs.openSync(logFile, "a") : "ignore"
  const proc = spawn(cmd, args, { cwd: RUN, stdio: ["ignore", out, out] })
  if (logFile) fs.closeSync(out)
  const child = { name, proc, logFile, exitInfo: null }
  child.exited = new Promise((resolve) => {
    proc.on("exit", (code, signal) => {
      child.exitInfo = { code, signal }
      resolve()
    })
    proc.on("error", (err) => {
      child.exitInfo = { code: null, signal: null, error: err.message }
      resolve()
    })
  })
  children.push(child)
  if (proc.pid) fs.appendFileSync(PIDFILE, `${proc.pid} ${name}\n`)
  return child
}

const alive = (child) => child.exitInfo === null

function describeExit(child) {
  const e = child.exitInfo
  if (!e) return "still running"
  if (e.error) return `failed to spawn: ${e.error}`
  return e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`
}

function tail(file, lines = 30) {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd()
    return text ? text.split("\n").slice(-lines).join("\n") : "(empty)"
  } catch {
    return "(no log)"
  }
}

async function stopAll() {
  if (currentWrk && currentWrk.exitCode === null) currentWrk.kill("SIGKILL")
  await Promise.all(
    children.filter(alive).map(async (c) => {
      c.proc.kill("SIGTERM") // nginx: fast shutdown, also stops its worker
      await Promise.race([c.exited, sleep(3000)])
      if (alive(c)) {
        c.proc.kill("SIGKILL")
        await c.exited
      }
    }),
  )
  fs.rmSync(PIDFILE, { force: true })
}

// Last resort if the process exits without going through stopAll().
process.on("exit", () => {
  if (currentWrk && currentWrk.exitCode === null) currentWrk.kill("SIGKILL")
  for (const c of children) if (alive(c)) c.proc.kill("SIGTERM")
})
let interrupted = false
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    interrupted = true // main() will now fail (wrk killed): stay quiet, this handler exits
    log(`${sig}: stopping everything`)
    stopAll().finally(() => process.exit(sig === "SIGINT" ? 130 : 143))
  })
}

// ---------------------------------------------------------------------------
// Helpers

/** Distinct free ports: hold all listeners open at once so none repeats. */
async function freePorts(n) {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve, reject) => {
          const s = net.createServer()
          s.once("error", reject)
          s.listen(0, "127.0.0.1", () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => s.address().port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

/** One GET without keep-alive; resolves { status, body } or rejects. */
function get(url, headers = {}, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = []
      res.on("data", (c) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }))
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error("timeout")))
    req.on("error", reject)
  })
}

/**
 * Poll `probe` until it returns true, within WAIT_MS. Fails early if any of
 * `watch` (children the probe depends on) has exited.
 */
async function waitFor(what, probe, watch = []) {
  const deadline = Date.now() + WAIT_MS
  let last = ""
  while (Date.now() < deadline) {
    const dead = watch.find((c) => !alive(c))
    if (dead) throw new BenchError(`${dead.name} ${describeExit(dead)} while waiting for ${what}`)
    try {
      const r = await probe()
      if (r === true) return
      last = String(r)
    } catch (err) {
      last = err.message
    }
    await sleep(100)
  }
  throw new BenchError(`timed out after ${WAIT_MS / 1000}s waiting for ${what} (last: ${last})`)
}

const sha = (buf) => createHash("sha256").update(buf).digest("hex")

// ---------------------------------------------------------------------------
// nginx

function nginxConf({ name, listen, server, upstreamBlock = "" }) {
  const dir = path.join(RUN, name)
  // Temp paths are compiled in as absolute /var/lib/nginx/... on Debian; point
  // them into our prefix so nginx also works unprivileged.
  const temps = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((t) => `  ${t}_temp_path ${dir}/tmp_${t};`)
    .join("\n")
  // As root, workers would switch to `nobody`, which may not be able to read
  // the work dir; as non-root the directive is ignored (with a warning).
  const user = process.getuid?.() === 0 ? "user root;" : ""
  return `# generated by bench/http.mjs
${user}
daemon off;            # we own the process: bench/http.mjs stops it
worker_processes 1;    # 2-core box: one worker per nginx, same as one Pico server
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  # wrk holds connections for the whole run; nginx's default of 1000 requests
  # per connection would add reconnects that Pico (Node) never does.
  keepalive_timeout 75s;
  keepalive_requests 1000000;
${temps}
${upstreamBlock}
  server {
    listen 127.0.0.1:${listen};
${server}
  }
}
`
}

function startNginx(name, conf) {
  const dir = path.join(RUN, name)
  fs.mkdirSync(dir, { recursive: true })
  const confFile = path.join(dir, "nginx.conf")
  fs.writeFileSync(confFile, conf)
  // -e: startup error log before the config is read (default is /var/log/nginx).
  return start(name, NGINX, ["-p", `${dir}/`, "-c", confFile, "-e", `${dir}/error.log`], {
    logFile: path.join(dir, "stderr.log"),
  })
}

// ---------------------------------------------------------------------------
// wrk

const TIME_MS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }
const BYTES_MIB = { B: 1 / 2 ** 20, KB: 1 / 2 ** 10, MB: 1, GB: 2 ** 10, TB: 2 ** 20 }

/** Parse `wrk --latency` output. wrk's KB/MB are 1024-based, so MB/s is MiB/s. */
export function parseWrk(out) {
  const m = (re) => out.match(re)
  const lat = (pct) => {
    const r = m(new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, "m"))
    return r ? Number(r[1]) * TIME_MS[r[2]] : null
  }
  const rps = m(/Requests\/sec:\s+([\d.]+)/)
  const tr = m(/Transfer\/sec:\s+([\d.]+)([KMGT]?B)/)
  const total = m(/(\d+) requests in ([\d.]+\w+), ([\d.]+[KMGT]?B) read/)
  const sock = m(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/)
  const non2xx = m(/Non-2xx or 3xx responses: (\d+)/)
  if (!rps || !tr) return null
  return {
    rps: Number(rps[1]),
    mbps: Number(tr[1]) * BYTES_MIB[tr[2]],
    p50: lat(50),
    p99: lat(99),
    requests: total ? Number(total[1]) : null,
    errors: sock ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] } : null,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  }
}

let currentWrk = null

async function wrk(url, { threads, conns, duration }) {
  const args = [`-t${threads}`, `-c${conns}`, `-d${duration}`, "--latency", "--timeout", "10s"]
  for (const [k, v] of Object.entries(HEADERS)) args.push("-H", `${k}: ${v}`)
  args.push(url)
  const proc = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] })
  currentWrk = proc
  fs.appendFileSync(PIDFILE, `${proc.pid} wrk\n`)
  let out = ""
  let err = ""
  proc.stdout.on("data", (d) => (out += d))
  proc.stderr.on("data", (d) => (err += d))
  // wrk stops itself after -d; the guard only catches a hung wrk.
  const guard = setTimeout(() => proc.kill("SIGKILL"), durationMs(duration) + 30_000)
  const code = await new Promise((r) => proc.on("close", r))
  clearTimeout(guard)
  currentWrk = null
  fs.appendFileSync(path.join(RUN, "wrk.log"), `$ wrk ${args.join(" ")}\n${out}${err}\n`)
  const parsed = parseWrk(out)
  if (code !== 0 || !parsed) {
    throw new BenchError(`wrk failed (exit ${code}) for ${url}:\n${out}${err}`)
  }
  return parsed
}

function durationMs(d) {
  const r = String(d).match(/^(\d+(?:\.\d+)?)(ms|s|m|h)?$/)
  if (!r) throw new BenchError(`bad duration '${d}' (use e.g. 3s, 10s, 1m)`)
  return Number(r[1]) * TIME_MS[r[2] || "s"]
}

// ---------------------------------------------------------------------------
// Report

const fmt = (v, digits = 2) => (v == null || Number.isNaN(v) ? "-" : v.toFixed(digits))
const fmtInt = (v) => (v == null ? "-" : Math.round(v).toLocaleString("en-US"))
const ratio = (a, b) => (a == null || !b ? null : a / b)
const fmtRatio = (r) => (r == null ? "-" : `${r.toFixed(2)}x`)

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)))
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i < 2 ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i])))
        .join("  "),
    )
    .join("\n")
}

function readVmHWM(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmHWM:\s+(\d+) kB/m)
    return m ? Number(m[1]) / 1024 : null
  } catch {
    return null
  }
}

function versionOf(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8" })
  return `${r.stdout || ""}${r.stderr || ""}`.split("\n")[0].trim() || null
}

// ---------------------------------------------------------------------------
// Main

async function main() {
  durationMs(DURATION) // validate early
  durationMs(WARMUP)
  fs.rmSync(RUN, { recursive: true, force: true })
  fs.mkdirSync(path.join(RUN, "www"), { recursive: true })
  fs.rmSync(PIDFILE, { force: true })

  // Random (incompressible) bodies; hashes let us check every target returns
  // exactly the same bytes before we trust its numbers.
  const hashes = {}
  for (const [name, size] of Object.entries(SIZES)) {
    const body = randomBytes(size)
    fs.writeFileSync(path.join(RUN, "www", name), body)
    hashes[name] = sha(body)
  }

  const [upPort, hopPort, proxyPort, upstreamPort, adminPort] = await freePorts(5)

  // Upstream: nginx serving static files; the "direct" target.
  const upstream = startNginx(
    "nginx-upstream",
    nginxConf({
      name: "nginx-upstream",
      listen: upPort,
      server: `    root ${RUN}/www;\n    location / { }`,
    }),
  )

  // Baseline proxy hop: what a well-configured reverse proxy costs. Keep-alive
  // to the upstream needs an `upstream` block (not a bare proxy_pass address),
  // HTTP/1.1 and a cleared Connection header.
  const hop = startNginx(
    "nginx-hop",
    nginxConf({
      name: "nginx-hop",
      listen: hopPort,
      upstreamBlock: `  upstream up {
    server 127.0.0.1:${upPort};
    keepalive 32;
    keepalive_requests 1000000;
  }`,
      server: `    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Larger buffers so a 1 MiB body streams through memory, never a temp file.
      proxy_buffer_size 64k;
      proxy_buffers 16 64k;
      proxy_max_temp_file_size 0;
    }`,
    }),
  )

  const targets = [
    { id: "direct", url: `http://127.0.0.1:${upPort}` },
    { id: "nginx", url: `http://127.0.0.1:${hopPort}` },
  ]

  const checkBodies = (t) => async () => {
    for (const name of Object.keys(SIZES)) {
      const r = await get(`${t.url}/${name}`, HEADERS)
      if (r.status !== 200) return `GET /${name} -> ${r.status}`
      if (sha(r.body) !== hashes[name]) return `GET /${name}: body mismatch (${r.body.length} bytes)`
    }
    return true
  }

  try {
    await waitFor("upstream nginx", checkBodies(targets[0]), [upstream])
  } catch (err) {
    throw new BenchError(
      `${err.message}\n--- nginx-upstream error.log ---\n${tail(path.join(RUN, "nginx-upstream", "error.log"))}`,
    )
  }
  try {
    await waitFor("nginx hop", checkBodies(targets[1]), [hop])
  } catch (err) {
    throw new BenchError(
      `${err.message}\n--- nginx-hop error.log ---\n${tail(path.join(RUN, "nginx-hop", "error.log"))}`,
    )
  }
  log(`direct nginx on :${upPort}, nginx hop on :${hopPort}`)

  let server = null
  let agent = null
  if (!ONLY_BASELINE) {
    if (!fs.existsSync(PICO_JS)) throw new BenchError(`${PICO_JS} missing; run npm run build`)
    const picoFail = (err) =>
      new BenchError(
        `Pico failed to start: ${err.message}\n` +
          `--- pico server (${server ? describeExit(server) : "not started"}) log tail ---\n${tail(path.join(RUN, "pico-server.log"))}\n` +
          `--- pico agent (${agent ? describeExit(agent) : "not started"}) log tail ---\n${tail(path.join(RUN, "pico-agent.log"))}`,
      )
    // Pico's logs go to files (not our terminal) so the table stays readable;
    // they are printed when something goes wrong.
    server = start(
      "pico-server",
      process.execPath,
      [
        ...NODE_ARGS,
        PICO_JS,
        "server",
        "--proxy.bind-addr",
        `127.0.0.1:${proxyPort}`,
        "--upstream.bind-addr",
        `127.0.0.1:${upstreamPort}`,
        "--admin.bind-addr",
        `127.0.0.1:${adminPort}`,
        "--gossip.bind-addr",
        "127.0.0.1:0",
        "--log.level",
        "warn",
      ],
      { logFile: path.join(RUN, "pico-server.log") },
    )
    try {
      await waitFor("pico server /ready", async () => {
        const r = await get(`http://127.0.0.1:${adminPort}/ready`)
        return r.status === 200 || `/ready -> ${r.status}`
      }, [server])
      agent = start(
        "pico-agent",
        process.execPath,
        [
          ...NODE_ARGS,
          PICO_JS,
          "agent",
          "--endpoints",
          `${ENDPOINT}/127.0.0.1:${upPort}`,
          "--server.url",
          `http://127.0.0.1:${upstreamPort}`,
          "--log.level",
          "warn",
        ],
        { logFile: path.join(RUN, "pico-agent.log") },
      )
      // The agent registers asynchronously: the proxy answers non-200 until then.
      const pico = { id: "pico", url: `http://127.0.0.1:${proxyPort}` }
      await waitFor("pico proxy to serve the bench endpoint", checkBodies(pico), [server, agent])
      targets.push(pico)
    } catch (err) {
      throw picoFail(err)
    }
    log(`pico proxy on :${proxyPort} (upstream :${upstreamPort}, admin :${adminPort})`)
  }

  const ensureAlive = () => {
    const dead = children.find((c) => !alive(c))
    if (dead) {
      throw new BenchError(
        `${dead.name} ${describeExit(dead)} during the benchmark\n--- log tail ---\n${tail(dead.logFile)}`,
      )
    }
  }

  // Warm-up (unreported): lets V8 JIT Pico's hot paths and fills the nginx
  // upstream keep-alive pool, so the first measured run is not penalised.
  for (const t of targets) {
    log(`warm-up ${t.id} (${WARMUP})`)
    await wrk(`${t.url}/1k`, { threads: 2, conns: 50, duration: WARMUP })
    ensureAlive()
  }

  // Interleave targets within each case: any drift in machine load (noisy
  // neighbours, thermal) hits all three targets alike instead of one.
  const results = {}
  for (const c of CASES) {
    results[c.id] = {}
    for (const t of targets) {
      log(`${c.label.replace(/\s+/g, " ")} -> ${t.id} (${DURATION})`)
      const r = await wrk(`${t.url}/${c.file}`, { threads: c.threads, conns: c.conns, duration: DURATION })
      ensureAlive()
      const errs = r.errors ? Object.values(r.errors).reduce((a, b) => a + b, 0) : 0
      if (errs || r.non2xx) log(`  warning: ${t.id} had ${errs} socket errors, ${r.non2xx} non-2xx responses`)
      results[c.id][t.id] = r
    }
  }

  // VmHWM = peak resident set size over the process lifetime.
  const rss = server ? { serverMiB: readVmHWM(server.proc.pid), agentMiB: readVmHWM(agent.proc.pid) } : null

  return { targets: targets.map((t) => t.id), results, rss }
}

function report({ targets, results, rss }) {
  const rows = [
    [
      "case",
      "target",
      "req/s",
      "p50 ms",
      "p99 ms",
      "MB/s",
      "vs direct",
      "vs nginx",
      "p99 vs nginx",
      "errors",
    ],
  ]
  const ratios = {}
  for (const c of CASES) {
    ratios[c.id] = {}
    const base = results[c.id]
    for (const [i, t] of targets.entries()) {
      const r = base[t]
      const vsDirect = t === "direct" ? null : ratio(r[c.metric], base.direct[c.metric])
      const vsNginx = t === "pico" ? ratio(r[c.metric], base.nginx[c.metric]) : null
      const p99VsNginx = t === "pico" ? ratio(r.p99, base.nginx.p99) : null
      ratios[c.id][t] = { metric: c.metric, vsDirect, vsNginx, p99VsNginx }
      const errs = (r.errors ? Object.values(r.errors).reduce((a, b) => a + b, 0) : 0) + r.non2xx
      rows.push([
        i === 0 ? c.label : "",
        t,
        fmtInt(r.rps),
        fmt(r.p50, 3),
        fmt(r.p99, 3),
        c.metric === "mbps" ? fmt(r.mbps, 1) : "-",
        vsDirect == null ? "-" : `${t}/direct ${fmtRatio(vsDirect)}`,
        vsNginx == null ? "-" : `${t}/nginx ${fmtRatio(vsNginx)}`,
        fmtRatio(p99VsNginx),
        String(errs),
      ])
    }
  }

  const cpus = os.cpus()
  console.log("")
  console.log(`Pico HTTP benchmark  ${new Date().toISOString()}  ${cpus.length} x ${cpus[0]?.model ?? "cpu"}`)
  console.log(
    `wrk ${DURATION} per run, interleaved; ratios compare req/s (1 KiB) or MB/s (1 MiB) to the same run's baselines`,
  )
  console.log("")
  console.log(table(rows))

  const checks = []
  if (targets.includes("pico")) {
    const c50 = results["1k_c50"]
    const big = results["1m_c8"]
    checks.push(
      {
        name: "1 KiB c50: pico req/s >= 0.15 x nginx-hop req/s",
        value: ratio(c50.pico.rps, c50.nginx.rps),
        pass: c50.pico.rps >= 0.15 * c50.nginx.rps,
      },
      {
        name: "1 KiB c50: pico p99 <= 5 x nginx-hop p99",
        value: ratio(c50.pico.p99, c50.nginx.p99),
        pass: c50.pico.p99 != null && c50.pico.p99 <= 5 * c50.nginx.p99,
      },
      {
        name: "1 MiB: pico MB/s >= 0.5 x nginx-hop MB/s",
        value: ratio(big.pico.mbps, big.nginx.mbps),
        pass: big.pico.mbps >= 0.5 * big.nginx.mbps,
      },
    )
    console.log("\nTargets (informative):")
    for (const ch of checks)
      console.log(
        `  ${ch.pass ? "PASS" : "FAIL"}  ${ch.name}  (actual ${ch.value == null ? "-" : `${ch.value.toFixed(3)}x`})`,
      )
    console.log(
      `\nPeak RSS (VmHWM): pico server ${fmt(rss.serverMiB, 1)} MiB, pico agent ${fmt(rss.agentMiB, 1)} MiB`,
    )
  } else {
    console.log("\n(BENCH_ONLY=baseline: Pico not measured)")
  }

  const json = {
    date: new Date().toISOString(),
    config: {
      duration: DURATION,
      warmup: WARMUP,
      cases: CASES,
      onlyBaseline: ONLY_BASELINE,
    },
    env: {
      node: process.version,
      nginx: versionOf(NGINX, ["-v"]),
      wrk: versionOf("wrk", ["-v"]),
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? null,
      loadavg: os.loadavg(),
    },
    results,
    ratios,
    checks,
    rssMiB: rss,
  }
  fs.writeFileSync(RESULTS, `${JSON.stringify(json, null, 2)}\n`)
  console.log(`\nResults written to ${path.relative(process.cwd(), RESULTS)}`)
}

// Only run when executed, so parseWrk can be imported for ad-hoc checks.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  fs.mkdirSync(WORK, { recursive: true })
  let code = 0
  try {
    report(await main())
  } catch (err) {
    if (interrupted) await new Promise(() => {}) // the signal handler exits
    code = 1
    log(`ERROR: ${err instanceof BenchError ? err.message : err.stack}`)
  }
  await stopAll()
  process.exit(code)
}
