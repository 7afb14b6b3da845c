import * as Setting from "./Setting.js"

/** The flags of `pico status ...`, given anywhere after `status`. */
export const statusSettings = {
  server: {
    url: Setting.url(
      "Admin URL of a node or of a load balancer in front of them.",
      "http://localhost:8002",
      Setting.httpUrl("http://localhost:8002"),
    ),
  },
  forward: Setting.string("Run the request on this node (its id) instead of the one answering.", "", "id"),
  auth: {
    token: Setting.secret('Token (JWT) sent as "Authorization: Bearer <token>", or "file:PATH".', "token"),
  },
  output: Setting.choice("How to print the answer.", ["yaml", "json"] as const, "yaml"),
  timeout: Setting.duration("Time to wait for the answer before giving up.", "15s"),
}

/** The flag of `pico status proxy requests`, beside the status flags. */
export const followSettings = {
  follow: Setting.toggle("Keep printing exchanges as they finish, until interrupted."),
}

/** The flags of `pico replay`, beside the status flags. */
export const replaySettings = {
  header: Setting.repeatedText('A header to set, "Name: value", or to remove, "Name:".', "header"),
  bodyFile: Setting.string("Send this file's bytes as the body instead of the captured one.", "", "path"),
}
