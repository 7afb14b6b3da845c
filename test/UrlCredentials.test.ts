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
  it("has its userinfo redacted, up to the authority's last @, with or without a scheme", () => {
    expect(withoutCredentials("https://user:pw@host:8001/p?q=a@b")).toBe(
      "https://(redacted)@host:8001/p?q=a@b",
    )
    expect(withoutCredentials("http://a@b:c@d@host")).toBe("http://(redacted)@host")
    expect(withoutCredentials("user:pw@proxy:3128")).toBe("(redacted)@proxy:3128")
    expect(withoutCredentials("ws://host:8001/x@y#z@w")).toBe("ws://host:8001/x@y#z@w")
    expect(withoutCredentials("http://host")).toBe("http://host")
    expect(withoutCredentials("")).toBe("")
  })
})
