// Builds a ConnectorTestReport step by step: each step is timed, a throw becomes a failed step
// naming the config field at fault, and the steps after a failure are not run.
import type { ConnectorTestReport, ConnectorTestStep } from './contract.ts';

export class TestReport {
  readonly steps: ConnectorTestStep[] = [];
  readonly found: Record<string, unknown> = {};
  #failed = false;

  /** Runs `fn` as the step `name` unless an earlier one failed; its string result is the detail. */
  async step(name: string, field: string | undefined, fn: () => Promise<string>): Promise<boolean> {
    if (this.#failed) return false;
    const started = performance.now();
    let ok = true;
    let detail: string;
    try {
      detail = await fn();
    } catch (err) {
      ok = false;
      detail = (err as Error)?.message ?? String(err);
    }
    const ms = Math.round(performance.now() - started);
    this.steps.push({ name, ok, detail: detail.slice(0, 1000), ...(ok || field === undefined ? {} : { field }), ms });
    if (!ok) this.#failed = true;
    return ok;
  }

  /** Records a step that failed without running anything (a check on what an earlier step found). */
  fail(name: string, field: string | undefined, detail: string): void {
    this.steps.push({ name, ok: false, detail, ...(field === undefined ? {} : { field }), ms: 0 });
    this.#failed = true;
  }

  report(): ConnectorTestReport {
    return { ok: !this.#failed && this.steps.length > 0, steps: this.steps, found: this.found };
  }
}
