// `npm run build`: the library and the `pico` command, into dist/.
//
// 1. tsc compiles src/ to dist/ for the library (`import { Agent } from "pico-tunnel"`), with declarations.
// 2. esbuild bundles the `pico` command into dist/bin/: the entry point, and one tree-shaken chunk per command
//    (each command's code is a dynamic import). Loading Effect and @effect/cli as some 900 separate modules took
//    most of a second before any command ran, and the code and bytecode of modules a command never calls kept
//    ~60 MiB (Node 20) to ~100 MiB (Node 24) of extra memory resident in a long-running server.

import { spawnSync } from "node:child_process"
import { rmSync } from "node:fs"
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

await build({
  entryPoints: ["src/bin/pico.ts"],
  outdir: "dist/bin",
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20.19",
  // Optional native speed-ups that ws loads when present; they stay outside the bundle.
  external: ["bufferutil", "utf-8-validate"],
  // Bundled CommonJS dependencies (ws, yaml) call require() for Node's own modules.
  banner: {
    js: 'import { createRequire as __picoCreateRequire } from "node:module"; const require = __picoCreateRequire(import.meta.url);',
  },
  logLevel: "warning",
})
