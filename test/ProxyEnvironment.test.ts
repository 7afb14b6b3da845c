import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import { proxyFromEnvironment } from "../src/Agent/ProxyEnvironment.js"

/** The proxy URL chosen for `serverUrl` (or "direct"), or the problem. */
const proxyFor = (serverUrl: string, env: Record<string, string>): string =>
  Either.match(proxyFromEnvironment(serverUrl, env), {
    onLeft: (problem) => `problem: ${problem}`,
    onRight: (proxy) => (proxy === undefined ? "direct" : `${proxy.url.href} from ${proxy.variable}`),
  })

const proxy = "http://proxy.internal:3128"

describe("the forward proxy from the environment", () => {
  it("uses HTTPS_PROXY for https and wss servers, HTTP_PROXY for http and ws", () => {
    const env = { HTTPS_PROXY: proxy, HTTP_PROXY: "http://plain.internal:8080" }
    expect(proxyFor("https://pico.example.com", env)).toBe(`${proxy}/ from HTTPS_PROXY`)
    expect(proxyFor("wss://pico.example.com", env)).toBe(`${proxy}/ from HTTPS_PROXY`)
    expect(proxyFor("http://pico.example.com:8001", env)).toBe("http://plain.internal:8080/ from HTTP_PROXY")
    expect(proxyFor("ws://pico.example.com:8001", env)).toBe("http://plain.internal:8080/ from HTTP_PROXY")
    expect(proxyFor("http://pico.example.com:8001", { HTTPS_PROXY: proxy })).toBe("direct")
    expect(proxyFor("https://pico.example.com", {})).toBe("direct")
    expect(proxyFor("https://pico.example.com", { HTTPS_PROXY: "  " })).toBe("direct")
  })

  it("prefers the lower-case variable, as curl does", () => {
    expect(proxyFor("https://pico.example.com", { HTTPS_PROXY: "http://upper:1", https_proxy: proxy })).toBe(
      `${proxy}/ from https_proxy`,
    )
    expect(
      proxyFor("https://pico.example.com", {
        HTTPS_PROXY: proxy,
        NO_PROXY: "other.com",
        no_proxy: "example.com",
      }),
    ).toBe("direct")
  })

  it("reads a proxy without a scheme as http://, and keeps its credentials for the CONNECT", () => {
    expect(proxyFor("https://pico.example.com", { HTTPS_PROXY: "proxy.internal:3128" })).toBe(
      `${proxy}/ from HTTPS_PROXY`,
    )
    expect(
      proxyFor("https://pico.example.com", { HTTPS_PROXY: "http://me:p%40ss@proxy.internal:3128" }),
    ).toBe("http://me:p%40ss@proxy.internal:3128/ from HTTPS_PROXY")
  })

  it("bypasses the proxy for hosts NO_PROXY lists: names with their subdomains, addresses, CIDR ranges, ports, *", () => {
    const through = (serverUrl: string, noProxy: string) =>
      proxyFor(serverUrl, { HTTPS_PROXY: proxy, HTTP_PROXY: proxy, NO_PROXY: noProxy }) !== "direct"
    expect(through("https://pico.example.com", "example.com")).toBe(false)
    expect(through("https://example.com", "example.com")).toBe(false)
    expect(through("https://pico.example.com", ".example.com")).toBe(false)
    expect(through("https://pico.example.com", "*.example.com")).toBe(false)
    expect(through("https://PICO.Example.com.", "example.com")).toBe(false)
    expect(through("https://pico.example.com", "ample.com")).toBe(true)
    expect(through("https://pico.example.com", "other.com, localhost")).toBe(true)
    expect(through("https://pico.example.com", "other.com example.com")).toBe(false)
    expect(through("https://pico.example.com", "*")).toBe(false)

    expect(through("http://10.1.2.3:8001", "10.1.2.3")).toBe(false)
    expect(through("http://10.1.2.3:8001", "10.0.0.0/8")).toBe(false)
    expect(through("http://11.1.2.3:8001", "10.0.0.0/8")).toBe(true)
    expect(through("http://[fd00::1]:8001", "fd00::/8")).toBe(false)
    expect(through("http://[::1]:8001", "::1")).toBe(false)
    expect(through("http://[::1]:8001", "[::1]:8001")).toBe(false)
    expect(through("http://pico.example.com:8001", "10.0.0.0/8")).toBe(true)

    expect(through("http://pico.example.com:8001", "example.com:8001")).toBe(false)
    expect(through("http://pico.example.com:8001", "example.com:9000")).toBe(true)
    expect(through("https://pico.example.com", "example.com:443")).toBe(false)
    expect(through("http://10.1.2.3:8001", "10.1.2.3:9000")).toBe(true)
  })

  it("takes a NO_PROXY range that is not one as matching nothing, as curl does, rather than throw", () => {
    for (const entry of ["10.0.0.0/99", "fd00::/129", "10.0.0.0/8x:8001", "10/8", "example.com/8"])
      expect(proxyFor("http://10.1.2.3:8001", { HTTP_PROXY: "http://proxy:3128", NO_PROXY: entry })).toBe(
        "http://proxy:3128/ from HTTP_PROXY",
      )
    expect(
      proxyFor("http://10.1.2.3:8001", { HTTP_PROXY: "http://proxy:3128", NO_PROXY: "10.0.0.0/8:8001" }),
    ).toBe("direct")
  })

  it("refuses what is not an http:// proxy URL in one line, naming the variable and hiding the password", () => {
    expect(
      proxyFor("https://pico.example.com", { HTTPS_PROXY: "socks5://me:hunter2@proxy.internal:1080" }),
    ).toBe(
      'problem: HTTPS_PROXY "socks5://(redacted)@proxy.internal:1080": only http:// proxies are supported (the tunnel\'s TLS runs inside CONNECT)',
    )
    expect(proxyFor("http://pico.example.com", { http_proxy: "http://[bad" })).toBe(
      'problem: http_proxy "http://[bad": expected a proxy URL such as http://proxy.internal:3128',
    )
    // Without a scheme, as curl takes it: still no password.
    expect(proxyFor("http://pico.example.com", { http_proxy: "me:hunter2@[bad" })).toBe(
      'problem: http_proxy "(redacted)@[bad": expected a proxy URL such as http://proxy.internal:3128',
    )
  })
})
