/**
 * What the Kafka source knows about rebalances, so that a batch fetched before one
 * is neither landed nor committed as if nothing had happened.
 *
 * kafkajs' own `isStale()` cannot say this: in kafkajs 2.2.4 it is
 * `consumerGroup.hasSeekOffset(topic, partition)` (consumer/runner.js), true only
 * after a `seek()`, which lakeside never calls. So the source counts what it learns:
 * - a **rebalance announced** (a heartbeat answered REBALANCE_IN_PROGRESS): the group
 *   is preparing a new generation, but this member still holds the current one and
 *   the coordinator still accepts its commits (classic groups accept an offset commit
 *   of the current generation while preparing a rebalance). A batch not yet landed is
 *   given up, so that the member rejoins sooner; a batch already landed is still
 *   committed: the coordinator checks the generation the commit carries.
 * - a **generation change** (consumer events REBALANCING and GROUP_JOIN; a heartbeat
 *   or a commit answered ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID):
 *   the partitions of a batch in hand may belong to another member now. kafkajs
 *   commits through the group's *current* offset manager (consumerGroup.commitOffsets),
 *   so after a rejoin a stale batch's commit would carry the new generation and be
 *   accepted even for a partition that moved, possibly moving the new owner's offset
 *   backwards. Such a batch is neither landed nor committed.
 * A change counts as an announcement too: `mayLand` is false after either.
 */
import type { Consumer } from 'kafkajs';

/** The counts when a batch arrived; compared with the counts before landing and before committing. */
export interface BatchTicket {
  readonly generation: number;
  readonly announced: number;
}

/** The group's answers meaning this member's generation is over. */
const GENERATION_GONE = new Set(['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID']);

/** The consumer's event hooks the generation listens to (a stub in tests). */
export type RebalanceEvents = Pick<Consumer, 'on' | 'events'>;

export class RebalanceGeneration {
  private generation = 0;
  private announced = 0;
  /**
   * Between the end of a generation (REBALANCING, or a heartbeat or commit saying it is
   * gone) and the next GROUP_JOIN no batch may land, also one whose ticket was taken
   * after the end: batches of one fetch are handed over one after another, so a later
   * one of the same fetch would otherwise land for a partition that may have moved.
   */
  private outOfGroup = false;

  /** Follows the consumer's own rebalance events. */
  watch(consumer: RebalanceEvents): void {
    consumer.on(consumer.events.REBALANCING, () => this.changed());
    consumer.on(consumer.events.GROUP_JOIN, () => this.joined());
  }

  /** A new generation began with this member in it. */
  joined(): void {
    this.changed();
    this.outOfGroup = false;
  }

  ticket(): BatchTicket {
    return { generation: this.generation, announced: this.announced };
  }

  /** A rebalance is being prepared; this member's generation still stands. */
  announce(): void {
    this.announced++;
  }

  /** This member's generation ended (until `joined()`). */
  changed(): void {
    this.generation++;
    this.announced++;
    this.outOfGroup = true;
  }

  /**
   * Reads a failed heartbeat or commit: a rebalance signal counts; true when it was
   * one (any other error, a broker hiccup, is the caller's to ignore or retry).
   */
  noteError(error: unknown): boolean {
    const type = (error as { type?: unknown } | null)?.type;
    if (type === 'REBALANCE_IN_PROGRESS') this.announce();
    else if (typeof type === 'string' && GENERATION_GONE.has(type)) this.changed();
    else return false;
    return true;
  }

  /** The batch may be landed: nothing about a rebalance was learnt since it arrived. */
  mayLand(ticket: BatchTicket): boolean {
    return !this.outOfGroup && ticket.announced === this.announced;
  }

  /** The landed batch's offset may be committed: the generation it was fetched in still stands. */
  mayCommit(ticket: BatchTicket): boolean {
    return ticket.generation === this.generation;
  }
}
