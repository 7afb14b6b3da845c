import * as Brand from "effect/Brand"

/**
 * An endpoint id, checked: URL- and DNS-label-safe, so it can sit in a path segment and in a Host name. Checked
 * once where it enters (the agent's config, the upstream port's path, a proxy request's headers); past that, the
 * type says it was.
 */
export type EndpointId = string & Brand.Brand<"EndpointId">

// "." and ".." alone are path segments that URLs resolve away (/pico/v1/listener/.. is /pico/v1/): no path could
// name them.
const endpointIdPattern = /^(?!\.\.?$)[A-Za-z0-9._~-]{1,128}$/

export const isValidEndpointId = (id: string): id is EndpointId => endpointIdPattern.test(id)

export const endpointIdRule = "1-128 characters of A-Z a-z 0-9 . _ ~ -, not . or .. alone"

/** `EndpointId("my-endpoint")` checks and brands a literal (it throws on a bad one); `.either` does not throw. */
export const EndpointId = Brand.refined<EndpointId>(isValidEndpointId, (id) =>
  Brand.error(`invalid endpoint id ${JSON.stringify(id)}: must be ${endpointIdRule}`),
)
