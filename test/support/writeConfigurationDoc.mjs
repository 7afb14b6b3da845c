// `npm run docs:config`: rewrites the option tables of docs/configuration.md from the settings table (built dist).
import { readFileSync, writeFileSync } from "node:fs"
import { referenceRows } from "../../dist/PicoConfig/Reference.js"
import { agentSettings, forwardTcpSettings, serverSettings } from "../../dist/PicoConfig.js"

const path = new URL("../../docs/configuration.md", import.meta.url)
let doc = readFileSync(path, "utf8")
for (const [heading, tree] of [
  ["### `pico server`", serverSettings],
  ["### `pico agent`", agentSettings],
  ["### `pico forward tcp`", forwardTcpSettings],
]) {
  const [before, after] = doc.split(`${heading}\n`)
  const lines = after.split("\n")
  const start = lines.findIndex((line) => line.startsWith("| `--"))
  let end = start
  while (end < lines.length && lines[end].startsWith("| `--")) end++
  lines.splice(start, end - start, ...referenceRows(tree))
  doc = `${before}${heading}\n${lines.join("\n")}`
}
writeFileSync(path, doc)
