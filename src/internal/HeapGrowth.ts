import { setFlagsFromString } from "node:v8"

/** How far V8 lets the old generation grow past its live size before marking again: to 3x. */
export const HEAP_GROWING_FLAG = "--heap-growing-percent=200"

/**
 * Sets V8's heap growing factor for this process unless its command line already chose one.
 *
 * Why: after the process has sat idle, V8's memory reducer leaves the heap in its "grow slowly" mode (about
 * 1.3x the live size). A proxy under load then keeps crossing that limit with short-lived objects and runs a
 * full collection every few dozen milliseconds: measured with 1 MiB bodies after 40 s idle, about 100 full
 * collections in 8 s and a third less throughput (bench/README.md). The flag is read at every collection, so it
 * can be set at run time, unlike a floor under the heap size.
 */
export const setHeapGrowth = (
  execArgv: ReadonlyArray<string> = process.execArgv,
  setFlags: (flags: string) => void = setFlagsFromString,
): boolean => {
  // V8 spells its flags with dashes or underscores alike.
  if (execArgv.some((argument) => argument.replaceAll("_", "-").startsWith("--heap-growing-percent")))
    return false
  setFlags(HEAP_GROWING_FLAG)
  return true
}
