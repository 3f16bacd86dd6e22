/** A wire parser's typed error, by its code. */
import { expect } from 'vitest';
import { WireError } from '../../bridge/wire/error.js';

export function expectError(x: unknown, code: string): void {
  expect(x).toBeInstanceOf(WireError);
  expect((x as WireError).code).toBe(code);
}
