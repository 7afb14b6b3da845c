import { describe, expect, it } from "vitest"
import { urlCredentials } from "../src/internal/UrlCredentials.js"

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
