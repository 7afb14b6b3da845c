import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests bind real ports and spawn processes: keep the 2-core CI machine from thrashing.
    maxWorkers: 2,
    minWorkers: 1,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/**/*.test.ts"], exclude: ["test/chaos/**"] },
      },
      {
        // The chaos suite (test/chaos/, root only: network namespaces) runs whole clusters under load and
        // measures them: it runs after the others, one file at a time, so nothing else competes for the CPU.
        extends: true,
        test: {
          name: "chaos",
          include: ["test/chaos/**/*.test.ts"],
          poolOptions: { forks: { singleFork: true } },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
})
