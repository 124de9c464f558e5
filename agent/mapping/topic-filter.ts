/**
 * MQTT topic filters (MQTT 3.1.1 §4.7, 5.0 §4.7): `+` matches exactly one level (an
 * empty one too), `#` matches the rest including the parent (`a/#` matches `a`).
 *
 * Invariants:
 * - A `$share/<group>/` prefix is not part of the filter and is stripped.
 * - Topics starting with `$` (`$SYS/…`) are never matched by a leading `+` or `#`.
 * - Routes are tried in declared order; the first match wins.
 */

export interface CompiledTopicFilter {
  /** The filter without any `$share/<group>/` prefix. */
  filter: string;
  levels: readonly string[];
  /** True when the filter ends in `#`. */
  multiLevel: boolean;
  /** Levels before any `#`. */
  fixedLevels: number;
}

/** `$share/group/a/+` → `a/+`; other filters unchanged. */
export function stripSharePrefix(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  const end = filter.indexOf('/', '$share/'.length);
  return end < 0 ? filter : filter.slice(end + 1);
}

export function compileTopicFilter(rawFilter: string): CompiledTopicFilter {
  const filter = stripSharePrefix(rawFilter);
  if (filter === '') throw new Error(`empty topic filter "${rawFilter}"`);
  const levels = filter.split('/');
  levels.forEach((level, i) => {
    if (level === '#' && i !== levels.length - 1) throw new Error(`topic filter "${rawFilter}": # is only allowed as the last level`);
    if (level !== '#' && level !== '+' && /[#+]/.test(level)) {
      throw new Error(`topic filter "${rawFilter}": wildcards must fill a whole level`);
    }
  });
  const multiLevel = levels[levels.length - 1] === '#';
  return { filter, levels, multiLevel, fixedLevels: multiLevel ? levels.length - 1 : levels.length };
}

/** Matches a topic already split into levels. */
export function matchTopicLevels(compiled: CompiledTopicFilter, topicLevels: readonly string[]): boolean {
  const n = topicLevels.length;
  if (compiled.multiLevel ? n < compiled.fixedLevels : n !== compiled.fixedLevels) return false;
  const first = compiled.levels[0]!;
  // `$` topics are reserved for the broker; only a filter spelling the `$` level matches them.
  if ((first === '+' || first === '#') && topicLevels[0]!.startsWith('$')) return false;
  for (let i = 0; i < compiled.fixedLevels; i++) {
    const level = compiled.levels[i]!;
    if (level !== '+' && level !== topicLevels[i]) return false;
  }
  return true;
}

export function topicMatches(filter: string, topic: string): boolean {
  return matchTopicLevels(compileTopicFilter(filter), topic.split('/'));
}

const ROUTE_CACHE_LIMIT = 8192;

/**
 * Picks the first route whose filter matches a topic. Plants publish on a bounded set
 * of topics, so decisions are cached per topic (the cache is dropped when it grows
 * past a limit, which keeps memory bounded when topics carry ids).
 */
export class TopicRouter<T> {
  private readonly filters: CompiledTopicFilter[];
  private readonly targets: T[];
  private readonly cache = new Map<string, number>();

  constructor(routes: readonly { filter: string; target: T }[]) {
    this.filters = routes.map((r) => compileTopicFilter(r.filter));
    this.targets = routes.map((r) => r.target);
  }

  /** The index of the first matching route, or -1. */
  indexOf(topic: string, topicLevels?: readonly string[]): number {
    const cached = this.cache.get(topic);
    if (cached !== undefined) return cached;
    const levels = topicLevels ?? topic.split('/');
    let found = -1;
    for (let i = 0; i < this.filters.length; i++) {
      if (matchTopicLevels(this.filters[i]!, levels)) {
        found = i;
        break;
      }
    }
    if (this.cache.size >= ROUTE_CACHE_LIMIT) this.cache.clear();
    this.cache.set(topic, found);
    return found;
  }

  route(topic: string, topicLevels?: readonly string[]): T | undefined {
    const index = this.indexOf(topic, topicLevels);
    return index < 0 ? undefined : this.targets[index];
  }
}
