/** Endpoint ids are URL- and DNS-label-safe so they can sit in a path segment and in a Host name. */
const endpointIdPattern = /^[A-Za-z0-9._~-]{1,128}$/

export const isValidEndpointId = (id: string): boolean => endpointIdPattern.test(id)

export const endpointIdRule = "1-128 characters of A-Z a-z 0-9 . _ ~ -"
