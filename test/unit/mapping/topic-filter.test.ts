import { describe, expect, it } from 'vitest';
import { compileTopicFilter, stripSharePrefix, TopicRouter, topicMatches } from '../../../agent/mapping/topic-filter.ts';

describe('topic filters', () => {
  it.each([
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/b', false],
    ['a/+/c', 'a/x/c', true],
    ['a/+/c', 'a//c', true], // + matches an empty level
    ['a/+', 'a/x/y', false],
    ['a/#', 'a', true], // # includes the parent level
    ['a/#', 'a/x/y/z', true],
    ['a/#', 'ab/x', false],
    ['#', 'anything/at/all', true],
    ['+/+', '/x', true], // leading empty level
    ['#', '$SYS/broker/load', false], // $ topics are not matched by leading wildcards
    ['+/broker/load', '$SYS/broker/load', false],
    ['$SYS/#', '$SYS/broker/load', true],
    ['$share/lakeside/plant/+/line/#', 'plant/ulm/line/3/sensor/t', true],
    ['plant/+/line/+/sensor/+', 'plant/ulm/line/coating/sensor/humidity', true],
    ['plant/+/line/+/sensor/+', 'plant/ulm/line/coating/inspection', false],
    ['A/b', 'a/b', false], // case-sensitive
  ])('%s vs %s → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  it('strips only a $share/<group>/ prefix', () => {
    expect(stripSharePrefix('$share/g/a/b')).toBe('a/b');
    expect(stripSharePrefix('$SYS/a')).toBe('$SYS/a');
    expect(stripSharePrefix('a/b')).toBe('a/b');
  });

  it('rejects malformed filters', () => {
    expect(() => compileTopicFilter('a/#/b')).toThrow(/last level/);
    expect(() => compileTopicFilter('a/b+')).toThrow(/whole level/);
    expect(() => compileTopicFilter('a/#b')).toThrow(/whole level/);
    expect(() => compileTopicFilter('')).toThrow(/empty/);
  });

  it('routes to the first matching filter, and remembers it', () => {
    const router = new TopicRouter([
      { filter: 'plant/+/line/+/inspection', target: 'inspections' },
      { filter: 'plant/+/line/#', target: 'everything_else' },
      { filter: 'plant/+/line/+/sensor/+', target: 'never_reached' },
    ]);
    expect(router.route('plant/ulm/line/3/inspection')).toBe('inspections');
    expect(router.route('plant/ulm/line/3/sensor/temp')).toBe('everything_else');
    expect(router.route('plant/ulm/line/3/sensor/temp')).toBe('everything_else');
    expect(router.route('other/topic')).toBeUndefined();
    expect(router.indexOf('other/topic')).toBe(-1);
  });
});
