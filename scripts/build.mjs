// `npm run build`: the library and the `pico` command, into dist/.
//
// 1. tsc compiles src/ to dist/ for the library (`import { Agent } from "pico-tunnel"`), with declarations.
// 2. esbuild bundles the `pico` command into dist/bin/: the entry point, and one tree-shaken chunk per command
//    (each command's code is a dynamic import). Loading Effect and @effect/cli as some 900 separate modules took
//    most of a second before any command ran, and the code and bytecode of modules a command never calls kept
//    ~60 MiB (Node 20) to ~100 MiB (Node 24) of extra memory resident in a long-running server.

import { spawnSync } from "node:child_process"
import { cpSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { build } from "esbuild"

const require = createRequire(import.meta.url)

// A clean dist/: files of renamed modules and old chunks must not linger, or ship in the package.
rmSync("dist", { recursive: true, force: true })

const tsc = spawnSync(
  process.execPath,
  [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json"],
  {
    stdio: "inherit",
  },
)
if (tsc.status !== 0) process.exit(tsc.status ?? 1)
// The web console's files, beside the module that reads them (src/Admin/ConsoleFiles.ts), for the library.
cpSync("src/Admin/console", "dist/Admin/console", { recursive: true })

/** The bundle carries the console's files inside it, in place of the module that reads them from disk. */
const embedConsoleFiles = {
  name: "embed-console-files",
  setup(build) {
    build.onLoad({ filter: /[\\/]src[\\/]Admin[\\/]ConsoleFiles\.ts$/ }, () => {
      const files = Object.fromEntries(
        readdirSync("src/Admin/console").map((name) => [
          name,
          readFileSync(`src/Admin/console/${name}`).toString("base64"),
        ]),
      )
      return {
        loader: "js",
        contents: `const files = ${JSON.stringify(files)};
export const readConsoleFiles = () => Object.fromEntries(Object.entries(files).map(([name, base64]) => [name, Buffer.from(base64, "base64")]));`,
      }
    })
  },
}

await build({
  entryPoints: ["src/bin/pico.ts"],
  outdir: "dist/bin",
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20.19",
  // A native module (the WebSocket reader's unmasking): loaded from node_modules, not bundled.
  external: ["bufferutil"],
  // Bundled CommonJS dependencies (yaml) call require() for Node's own modules.
  banner: {
    js: 'import { createRequire as __picoCreateRequire } from "node:module"; const require = __picoCreateRequire(import.meta.url);',
  },
  plugins: [embedConsoleFiles],
  logLevel: "warning",
})
