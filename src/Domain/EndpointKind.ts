/**
 * What an endpoint carries: HTTP requests (the default, and all there was before kinds), or raw TCP connections
 * (a database, SSH, anything that is not HTTP). An agent says which when it connects; the node records it, gossips
 * it, and answers a client that asks an endpoint for the other kind with an error instead of forwarding.
 */
export type EndpointKind = "http" | "tcp"

export const endpointKinds: ReadonlyArray<EndpointKind> = ["http", "tcp"]

export const isEndpointKind = (text: string): text is EndpointKind =>
  (endpointKinds as ReadonlyArray<string>).includes(text)

/**
 * The `Upgrade` token that asks the proxy port for a TCP connection to an endpoint: the request is forwarded to
 * the endpoint's agent, which answers `101 Switching Protocols` once its service has accepted the connection.
 */
export const tcpUpgradeToken = "pico-tcp"

/** The query parameter of the agent's listener URL that names the endpoint's kind (absent: HTTP). */
export const kindParameter = "kind"
