import type * as http from "node:http"
import { type Exchange, newExchange } from "../../src/Proxy/Forward.js"

/**
 * An exchange for a request as Node would have parsed it (only the fields given), with no response behind it: for
 * what reads an exchange, such as the access log and the capture. `observed`: bytes are counted.
 */
export const exchangeOf = (req: object, observed = false): Exchange =>
  newExchange(
    req as http.IncomingMessage,
    {} as http.ServerResponse,
    undefined,
    { gatewayTimeout: 1, idleTimeout: 1 },
    () => false,
    observed,
  )
