// Prints the functions that took the most CPU in a V8 .cpuprofile (node --cpu-prof), by self time and with
// their callees ("total"), as bench/profile.sh reports them. Usage: node bench/top-frames.mjs FILE [COUNT]
import { readFileSync } from "node:fs"
import { basename } from "node:path"

const [file, count = "25"] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file, "utf8"))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfTicks = new Map()
for (const id of profile.samples) selfTicks.set(id, (selfTicks.get(id) ?? 0) + 1)

const parents = new Map()
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)

const nameOf = ({ callFrame: { functionName, url, lineNumber } }) =>
  `${functionName || "(anonymous)"} ${url === "" ? "" : `${basename(url)}:${lineNumber + 1}`}`.trim()

const self = new Map()
const total = new Map()
for (const [id, ticks] of selfTicks) {
  const name = nameOf(byId.get(id))
  self.set(name, (self.get(name) ?? 0) + ticks)
  // Each function on the stack once, however deep the recursion.
  const seen = new Set()
  for (let at = id; at !== undefined; at = parents.get(at)) {
    const onStack = nameOf(byId.get(at))
    if (seen.has(onStack)) continue
    seen.add(onStack)
    total.set(onStack, (total.get(onStack) ?? 0) + ticks)
  }
}
const all = profile.samples.length
const idle = self.get("(idle)") ?? 0
const pct = (ticks) => `${((100 * ticks) / (all - idle)).toFixed(1)}%`.padStart(6)
console.log(`${all} samples, ${((100 * idle) / all).toFixed(0)}% idle; shares of the busy time`)
const rows = [...self].filter(([name]) => name !== "(idle)").sort((a, b) => b[1] - a[1])
for (const [name, ticks] of rows.slice(0, Number(count)))
  console.log(`${pct(ticks)} self ${pct(total.get(name) ?? ticks)} total  ${name}`)
