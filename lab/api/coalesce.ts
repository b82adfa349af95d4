interface Waiter {
  gen: number
  resolve: () => void
  reject: (e: unknown) => void
}

/**
 * Runs a job at most once at a time and folds bursts of requests together: `run()` resolves when
 * an execution that started after the call has finished. Used for state writes and for pushing the
 * network snapshot to the hosts, where only the latest state matters.
 * @example const flush = new Coalescer(() => writeState()); await flush.run()
 */
export class Coalescer {
  private requested = 0
  private finished = 0
  private running = false
  private waiters: Waiter[] = []

  constructor(private readonly job: () => Promise<void>) {}

  /** Ask for a run; resolves (or rejects with its error) once a run that began after now is done. */
  run(): Promise<void> {
    const gen = ++this.requested
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ gen, resolve, reject }))
    if (!this.running) void this.loop()
    return done
  }

  /** Resolves when nothing is running or pending. */
  async idle(): Promise<void> {
    while (this.running) await this.run().catch(() => undefined)
  }

  private async loop(): Promise<void> {
    this.running = true
    try {
      while (this.finished < this.requested) {
        const gen = this.requested
        let error: unknown = null
        try {
          await this.job()
        } catch (e) {
          error = e ?? new Error('job failed')
        }
        this.finished = gen
        const ready = this.waiters.filter((w) => w.gen <= gen)
        this.waiters = this.waiters.filter((w) => w.gen > gen)
        for (const w of ready) {
          if (error === null) w.resolve()
          else w.reject(error)
        }
      }
    } finally {
      this.running = false
    }
  }
}
