import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { loopbackPorts, picoPerTest } from "../support/process.js"

const { pico } = picoPerTest(afterEach)

const accepts = (addr: string) =>
  new Promise<boolean>((resolve) => {
    const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))]
    const socket = net.connect(port, host, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on("error", () => resolve(false))
  })

describe("pico server's gossip address lines", () => {
  it("says where gossip listens (the bound port) apart from where peers are told to reach it", async () => {
    const server = pico([
      "server",
      ...loopbackPorts("proxy", "upstream", "admin", "gossip"),
      ...["--gossip.advertise-addr", "127.0.0.9:7946"],
    ])
    const listening = await server.waitForLog("gossip listening")
    expect(listening.subsystem).toBe("gossip")
    expect(String(listening.addr)).toMatch(/^127\.0\.0\.1:[1-9]\d*$/)
    expect(await accepts(String(listening.addr))).toBe(true)
    const started = await server.waitForLog("gossip started")
    expect([started.subsystem, started["advertise-addr"]]).toEqual(["cluster", "127.0.0.9:7946"])
  })

  it("advertises the bound address when none is given", async () => {
    const server = pico(["server", ...loopbackPorts("proxy", "upstream", "admin", "gossip")])
    const bound = String((await server.waitForLog("gossip listening")).addr)
    expect((await server.waitForLog("gossip started"))["advertise-addr"]).toBe(bound)
  })
})
