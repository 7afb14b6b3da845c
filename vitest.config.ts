import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests bind real ports and spawn processes: keep the 2-core CI machine from thrashing.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
