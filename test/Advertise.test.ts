import { describe, expect, it } from "vitest"
import { advertiseAddress, privateIp } from "../src/Domain/Advertise.js"

describe("advertise addresses", () => {
  it("prefers the configured address", () => {
    expect(
      advertiseAddress({ host: "10.0.0.5", port: 8000 }, { address: "0.0.0.0", port: 9000, family: "IPv4" }),
    ).toBe("10.0.0.5:8000")
  })

  it("advertises a specific bound address as it is", () => {
    expect(advertiseAddress(undefined, { address: "127.0.0.1", port: 41234, family: "IPv4" })).toBe(
      "127.0.0.1:41234",
    )
    expect(advertiseAddress(undefined, { address: "::1", port: 8000, family: "IPv6" })).toBe("[::1]:8000")
  })

  it("replaces an unspecified address with the machine's IP and keeps the port", () => {
    const ip = privateIp()
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    expect(advertiseAddress(undefined, { address: "::", port: 8000, family: "IPv6" })).toBe(`${ip}:8000`)
    expect(advertiseAddress(undefined, { address: "0.0.0.0", port: 8003, family: "IPv4" })).toBe(`${ip}:8003`)
  })
})
