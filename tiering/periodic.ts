/**
 * One background loop of tiering (uploads, eviction, archive): runs `task`, waits
 * `intervalMs` after it ends, runs it again; never two at once. An error is logged by
 * `onError` and the loop goes on. `stop()` cancels the next run and waits for the
 * running one. Timers are unref'd: a loop never keeps the process alive by itself.
 */
export class Periodic {
  private readonly task: () => Promise<unknown>;
  private readonly intervalMs: number;
  private readonly onError: (error: Error) => void;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = false;

  constructor(task: () => Promise<unknown>, intervalMs: number, onError: (error: Error) => void) {
    this.task = task;
    this.intervalMs = intervalMs;
    this.onError = onError;
  }

  start(firstDelayMs = 0): void {
    this.schedule(firstDelayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.task()
        .catch((error: Error) => this.onError(error))
        .finally(() => {
          this.running = null;
          this.schedule(this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }
}
