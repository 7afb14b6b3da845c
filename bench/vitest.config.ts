import { defineConfig } from "vitest/config"

/** The TCP benchmark runs under vitest to use the tests' helpers; `npm test` never picks it up. */
export default defineConfig({
  test: {
    include: ["bench/tcp.ts"],
    testTimeout: 1_800_000,
    hookTimeout: 60_000,
    pool: "forks",
    poolOptions: { forks: { singleFork: true } },
  },
})
