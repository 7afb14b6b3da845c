import { readFileSync } from "node:fs"

/** The web console's files, in src/Admin/console/ (copied beside this module into dist/ by the build). */
export const consoleFileNames = ["index.html", "console.js", "console.css"] as const

export type ConsoleFileName = (typeof consoleFileNames)[number]

/**
 * The console's files, read from beside this module. The `pico` bundle replaces this module with one holding the
 * files themselves (scripts/build.mjs), so the command needs nothing next to it wherever it is installed.
 */
export const readConsoleFiles = (): Record<ConsoleFileName, Buffer> =>
  Object.fromEntries(
    consoleFileNames.map((name) => [name, readFileSync(new URL(`./console/${name}`, import.meta.url))]),
  ) as Record<ConsoleFileName, Buffer>
