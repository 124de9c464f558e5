/** A gate sources wait on before taking new work: closed at the critical disk watermark or while the landing log is blocked. */
export class PauseGate {
  private waiters: (() => void)[] = [];
  private paused = false;

  get isPaused(): boolean {
    return this.paused;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const wake of this.waiters.splice(0)) wake();
  }

  wait(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
