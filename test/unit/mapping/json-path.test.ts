import { describe, expect, it } from 'vitest';
import { compileJsonPath } from '../../../agent/mapping/json-path.ts';

const doc = { ts: 1, reading: { value: 41.2, tags: ['a', 'b'] }, defects: [{ label: 'scratch', box: [1, 2] }], 'odd-key': true, n: null };

describe('JSON paths', () => {
  it.each([
    ['ts', 1],
    ['reading.value', 41.2],
    ['reading.tags[1]', 'b'],
    ['defects[0].label', 'scratch'],
    ['defects[0].box[1]', 2],
    ['odd-key', true],
    ['n', null],
    ['missing', undefined],
    ['reading.missing.deeper', undefined],
    ['defects[3].label', undefined],
    ['reading[0]', undefined], // an index into an object
    ['defects.label', undefined], // a key into an array
    ['ts.x', undefined], // a key into a number
    ['constructor', undefined], // never inherited properties
    ['reading.__proto__', undefined],
  ])('%s', (path, expected) => {
    expect(compileJsonPath(path).get(doc)).toEqual(expected);
  });

  it('compiles to steps once', () => {
    const path = compileJsonPath('a.b[10].c');
    expect(path.steps).toEqual(['a', 'b', 10, 'c']);
    expect(path.rootIsArray).toBe(false);
    expect(compileJsonPath('[0].x').rootIsArray).toBe(true);
    expect(compileJsonPath('[0].x').get([{ x: 5 }])).toBe(5);
  });

  it.each(['', 'a..b', 'a.', '.a', 'a[x]', 'a[-1]', 'a]'])('rejects %j', (path) => {
    expect(() => compileJsonPath(path)).toThrow(/invalid JSON path/);
  });
});
