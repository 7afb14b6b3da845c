import * as v8 from "node:v8"
import { runInNewContext } from "node:vm"

// V8 exposes gc() to contexts created after the flag is set, without restarting the test process with it.
v8.setFlagsFromString("--expose-gc")

/** A full garbage collection, for tests of what happens to objects nothing refers to any more. */
export const collectGarbage = runInNewContext("gc") as () => void
