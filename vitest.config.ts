import { defineConfig } from 'vitest/config'

/**
 * No test leaves an SSH connection keeper behind: runs the tests start (the CLI included) connect
 * directly unless a test asks for the keeper itself (test/e2e/ssh-keeper.test.ts, with its own
 * directory).
 */
const env = { RUNBOOK_SSH_PERSIST: '0' }

/**
 * Two projects: `unit` runs in parallel and needs nothing from the machine; `e2e` starts real
 * daemons and namespaces, so its files run one at a time.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/e2e/**'],
          testTimeout: 20_000,
          env,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
          env,
        },
      },
    ],
  },
})
