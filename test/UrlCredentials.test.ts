import { describe, expect, it } from "vitest"
import { urlCredentials, withoutCredentials } from "../src/internal/UrlCredentials.js"

describe("a URL's credentials", () => {
  it("are user:password, percent-decoded, or undefined when the URL has none", () => {
    expect(urlCredentials(new URL("http://me:p%40ss@proxy:3128"))).toBe("me:p@ss")
    expect(urlCredentials(new URL("http://me@proxy:3128"))).toBe("me:")
    expect(urlCredentials(new URL("http://:secret@proxy:3128"))).toBe(":secret")
    expect(urlCredentials(new URL("http://proxy:3128"))).toBeUndefined()
  })

  it("keep a malformed percent-escape as written rather than fail", () => {
    expect(urlCredentials(new URL("ws://a%zz:b%@node:8001/"))).toBe("a%zz:b%")
  })
})

describe("a URL as Pico prints it", () => {
  it("has its userinfo redacted, up to the last @, with one slash, two, or no scheme at all", () => {
    expect(withoutCredentials("https://user:pw@host:8001/p?q=1")).toBe("https://(redacted)@host:8001/p?q=1")
    expect(withoutCredentials("http://a@b:c@d@host")).toBe("http://(redacted)@host")
    expect(withoutCredentials("http:/user:pw@host")).toBe("http:/(redacted)@host")
    expect(withoutCredentials("http://admin:p#ss@127.0.0.1:1")).toBe("http://(redacted)@127.0.0.1:1")
    expect(withoutCredentials("http://admin:p/s?s@host/x")).toBe("http://(redacted)@host/x")
    expect(withoutCredentials("user:pw@proxy:3128")).toBe("(redacted)@proxy:3128")
    // A path with an @ is shown less rather than risk a password.
    expect(withoutCredentials("ws://host:8001/x@y")).toBe("ws://(redacted)@y")
    expect(withoutCredentials("http://host")).toBe("http://host")
    expect(withoutCredentials("")).toBe("")
  })
})
