import { execFile, execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

/**
 * Hosts on a private network, made of Linux network namespaces: each host is a namespace with one interface
 * (`eth0`, an address on a /24) whose veth peer is a port of a bridge. The bridge lives in a namespace of its own,
 * so nothing but one veth touches the machine's own network, and the machine's firewall never sees the bridged
 * traffic. That veth gives this process (the test) an address on the network too, to drive load and read status.
 *
 *   this process ─ pc<pid>x<n> ─┐
 *   host n1 ─ eth0 ─────────────┤ br0 (namespace picochaos-<pid>-<n>-hub)
 *   host n2 ─ eth0 ─────────────┘ ...
 *
 * Names carry the owning process's pid, so parallel runs never collide and a later run can tell what a crashed one
 * left behind (`removeLeftovers`). Firewall rules live inside the namespaces and vanish with them; a scratch
 * directory of the same name holds the run's files. Needs root.
 */

const run = promisify(execFile)

/**
 * Every namespace this harness makes is `picochaos-<pid>-<n>-<host>`, its scratch directory `picochaos-<pid>-<n>`
 * in the temp directory, and the root end of its veth `pc<pid>x<n>`.
 */
const PREFIX = "picochaos"
const namespacePattern = /^picochaos-(\d+)-\d+-[\w-]+$/
const directoryPattern = /^picochaos-(\d+)-\d+$/
// Linux caps interface names at 15 bytes: "pc" + a pid (at most 7 digits) + "x" + a counter.
const rootVethPattern = /^pc(\d+)x\d+$/

export interface Host {
  readonly name: string
  readonly netns: string
  readonly ip: string
}

const ip = (...args: ReadonlyArray<string>) => run("ip", args)
const inNetns = (netns: string, command: string, ...args: ReadonlyArray<string>) =>
  run("ip", ["netns", "exec", netns, command, ...args])

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Kills whatever still runs inside a namespace (only ever processes the harness started there), then deletes it. */
const deleteNamespace = (netns: string) => {
  const pids = execFileSync("ip", ["netns", "pids", netns], { encoding: "utf8" }).split("\n").filter(Boolean)
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL")
    } catch {
      // Already gone.
    }
  }
  execFileSync("ip", ["netns", "delete", netns])
}

const ignoreErrors = (cleanup: () => void) => {
  try {
    cleanup()
  } catch {
    // Best effort: the next run removes what is left.
  }
}

/** Removes the namespaces and veths of harness runs whose process is gone (crashed, killed, timed out). */
export const removeLeftovers = (): void => {
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
  for (const line of namespaces.split("\n")) {
    const name = line.split(" ")[0] ?? ""
    const owner = namespacePattern.exec(name)?.[1]
    if (owner !== undefined && !isAlive(Number(owner))) ignoreErrors(() => deleteNamespace(name))
  }
  const links = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })
  for (const line of links.split("\n")) {
    const name = line.split(": ")[1]?.split("@")[0] ?? ""
    const owner = rootVethPattern.exec(name)?.[1]
    if (owner !== undefined && !isAlive(Number(owner)))
      ignoreErrors(() => execFileSync("ip", ["link", "del", name]))
  }
  for (const name of readdirSync(tmpdir())) {
    const owner = directoryPattern.exec(name)?.[1]
    if (owner !== undefined && !isAlive(Number(owner)))
      rmSync(join(tmpdir(), name), { recursive: true, force: true })
  }
}

/** A free 10.200-215.x.0/24 for this run: the root namespace routes it, so it must not clash with another run's. */
const freeSubnet = async (seed: number): Promise<string> => {
  const { stdout } = await ip("-4", "route", "show")
  for (let i = 0; i < 4096; i++) {
    const k = (seed + i) % 4096
    const subnet = `10.${200 + (k >> 8)}.${k & 255}`
    if (!stdout.includes(`${subnet}.`)) return subnet
  }
  throw new Error("no free 10.200.0.0/12 subnet for the test network")
}

let networks = 0
const live = new Set<Network>()

// A worker that exits without running afterAll (an uncaught error, process.exit) still takes its network down.
process.on("exit", () => {
  for (const network of live) network.destroySync()
})

export interface Network {
  /** This process's address on the network. */
  readonly testIp: string
  /** A scratch directory for the run's files (configs, logs), removed with the network. */
  readonly dir: string
  readonly hosts: ReadonlyArray<Host>
  readonly host: (name: string) => Host
  /** Drops each packet arriving at the given hosts (every host by default) with this probability. */
  readonly loss: (probability: number, hosts?: ReadonlyArray<Host>) => Promise<void>
  /** Cuts `host` off from `others`, both ways, silently (dropped, not refused), as a broken link does. */
  readonly partition: (host: Host, others: ReadonlyArray<Host>) => Promise<void>
  /** Removes every loss and partition rule. */
  readonly heal: () => Promise<void>
  /** Kills anything still running in the hosts and deletes the namespaces and veths. */
  readonly destroy: () => Promise<void>
  readonly destroySync: () => void
}

/** Makes a network with one host per name, each with its own address (`.11`, `.12`, ... in order). */
export const createNetwork = async (names: ReadonlyArray<string>): Promise<Network> => {
  if (process.getuid?.() !== 0)
    throw new Error("network namespaces need root: run the chaos suite as root (CI does)")
  removeLeftovers()
  const n = networks++
  const base = `${PREFIX}-${process.pid}-${n}`
  const hub = `${base}-hub`
  const rootVeth = `pc${process.pid}x${n}`
  const subnet = await freeSubnet(process.pid * 7 + n)
  const hosts = names.map((name, i) => ({ name, netns: `${base}-${name}`, ip: `${subnet}.${11 + i}` }))
  const namespaces = [hub, ...hosts.map((host) => host.netns)]
  const dir = join(tmpdir(), base)

  let destroyed = false
  const destroySync = () => {
    if (destroyed) return
    destroyed = true
    live.delete(network)
    ignoreErrors(() => execFileSync("ip", ["link", "del", rootVeth], { stdio: "ignore" }))
    for (const netns of namespaces) ignoreErrors(() => deleteNamespace(netns))
    rmSync(dir, { recursive: true, force: true })
  }
  const everyHost = (command: string, ...args: ReadonlyArray<string>) =>
    Promise.all(hosts.map((host) => inNetns(host.netns, command, ...args)))
  const network: Network = {
    testIp: `${subnet}.1`,
    dir,
    hosts,
    host: (name) => {
      const found = hosts.find((host) => host.name === name)
      if (found === undefined) throw new Error(`no host ${name}`)
      return found
    },
    loss: async (probability, targets = hosts) => {
      const rule = ["-A", "INPUT", "-i", "eth0", "-m", "statistic", "--mode", "random"]
      await Promise.all(
        targets.map((host) =>
          inNetns(host.netns, "iptables", ...rule, "--probability", String(probability), "-j", "DROP"),
        ),
      )
    },
    // Dropping on INPUT at both ends, never on OUTPUT: a dropped outgoing packet fails the send with EPERM, which
    // a real partition never does.
    partition: async (host, others) => {
      for (const other of others) {
        await inNetns(host.netns, "iptables", "-A", "INPUT", "-s", other.ip, "-j", "DROP")
        await inNetns(other.netns, "iptables", "-A", "INPUT", "-s", host.ip, "-j", "DROP")
      }
    },
    heal: async () => {
      await everyHost("iptables", "-F", "INPUT")
    },
    destroy: async () => destroySync(),
    destroySync,
  }
  live.add(network)

  try {
    mkdirSync(dir)
    for (const netns of namespaces) await ip("netns", "add", netns)
    await ip("-n", hub, "link", "add", "br0", "type", "bridge")
    await ip("-n", hub, "link", "set", "br0", "up")
    const attach = async (port: string) => {
      await ip("-n", hub, "link", "set", "dev", port, "master", "br0")
      await ip("-n", hub, "link", "set", "dev", port, "up")
    }
    for (const [i, host] of hosts.entries()) {
      await ip(
        "link",
        "add",
        "eth0",
        "netns",
        host.netns,
        "type",
        "veth",
        "peer",
        "name",
        `port${i}`,
        "netns",
        hub,
      )
      await attach(`port${i}`)
      await ip("-n", host.netns, "addr", "add", `${host.ip}/24`, "dev", "eth0")
      await ip("-n", host.netns, "link", "set", "eth0", "up")
      await ip("-n", host.netns, "link", "set", "lo", "up")
    }
    await ip("link", "add", rootVeth, "type", "veth", "peer", "name", "test", "netns", hub)
    await attach("test")
    await ip("addr", "add", `${network.testIp}/24`, "dev", rootVeth)
    await ip("link", "set", rootVeth, "up")
  } catch (error) {
    destroySync()
    throw error
  }
  return network
}
