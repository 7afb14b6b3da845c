import type { AddressInfo } from "node:net"
import { networkInterfaces } from "node:os"
import { formatHostPort, type HostPort } from "./Address.js"

const privateIpv4 = /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/

/**
 * This machine's address as other machines on its network see it: the first private IPv4 address on a
 * non-loopback interface, else any non-loopback IPv4, else loopback (a cluster on one machine).
 */
export const privateIp = (): string => {
  const candidates = Object.values(networkInterfaces())
    .flat()
    .filter((info) => info !== undefined && info.family === "IPv4" && !info.internal)
    .map((info) => info?.address as string)
  return candidates.find((address) => privateIpv4.test(address)) ?? candidates[0] ?? "127.0.0.1"
}

/**
 * The address to tell other nodes: the configured one, else the bound one, except that a listener on every
 * interface (0.0.0.0 or ::) advertises the machine's private IP with the bound port.
 */
export const advertiseAddress = (configured: HostPort | undefined, bound: AddressInfo): string => {
  if (configured !== undefined) return formatHostPort(configured)
  const unspecified = bound.address === "0.0.0.0" || bound.address === "::"
  return formatHostPort({ host: unspecified ? privateIp() : bound.address, port: bound.port })
}
