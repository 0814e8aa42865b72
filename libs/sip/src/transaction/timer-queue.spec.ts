import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../transport/fake-clock';
import { TimerQueue, TimerSlot } from './timer-queue';

function setup() {
  const clock = new FakeClock(1000);
  const q = new TimerQueue<string>(clock);
  const fired: string[] = [];
  const owner = (name: string) => ({ onTimer: (k: string) => fired.push(`${name}:${k}@${clock.now()}`) });
  return { clock, q, fired, owner };
}

describe('TimerQueue', () => {
  test('timers of different durations fire at their due times, earliest first', () => {
    const { clock, q, fired, owner } = setup();
    const a = new TimerSlot(owner('a'), 'x');
    const b = new TimerSlot(owner('b'), 'x');
    const c = new TimerSlot(owner('c'), 'x');
    q.arm(a, 5000, 'L');
    clock.advance(10);
    q.arm(b, 500, 'A');
    q.arm(c, 5000, 'J');
    clock.advance(499);
    assert.deepEqual(fired, []);
    clock.advance(1);
    assert.deepEqual(fired, ['b:A@1510']);
    clock.advance(10_000);
    assert.deepEqual(fired, ['b:A@1510', 'a:L@6000', 'c:J@6010']);
    assert.equal(q.size, 0);
    assert.equal(clock.size, 0, 'no clock timer left once nothing is armed');
  });

  test('re-arming moves a slot; disarming stops it and leaves no clock timer', () => {
    const { clock, q, fired, owner } = setup();
    const a = new TimerSlot(owner('a'), 'x');
    const b = new TimerSlot(owner('b'), 'x');
    q.arm(a, 500, 'A');
    q.arm(b, 32_000, 'B');
    clock.advance(400);
    q.arm(a, 1000, 'A'); // doubled interval from now
    clock.advance(600);
    assert.deepEqual(fired, []);
    clock.advance(400);
    assert.deepEqual(fired, ['a:A@2400']);
    q.disarm(b);
    assert.equal(a.armed || b.armed, false);
    assert.equal(clock.size, 0);
    clock.advance(64_000);
    assert.deepEqual(fired, ['a:A@2400']);
  });

  test('a timer armed while firing, already due, fires in the same pass; a zero wait fires at once', () => {
    const { clock, q, fired } = setup();
    const again = new TimerSlot({ onTimer: (k: string) => fired.push(`${k}@${clock.now()}`) }, 'x');
    const first = new TimerSlot(
      {
        onTimer: (k: string) => {
          fired.push(`${k}@${clock.now()}`);
          q.arm(again, 0, 'I');
        },
      },
      'x',
    );
    q.arm(first, 100, 'G');
    clock.advance(100);
    assert.deepEqual(fired, ['G@1100', 'I@1100']);
  });

  test('a clock that steps back keeps each duration sorted', () => {
    const clock = new FakeClock(10_000);
    const q = new TimerQueue<string>(clock);
    const fired: string[] = [];
    const slot = (n: string) => new TimerSlot({ onTimer: () => fired.push(n) }, 'x');
    const a = slot('a');
    const b = slot('b');
    q.arm(a, 500, 'A'); // due at 10500
    // the clock steps back 300 ms (and stays back): b, armed after a, is due before it
    const now = clock.now.bind(clock);
    clock.now = () => now() - 300;
    q.arm(b, 500, 'A'); // due at 10200 on the stepped-back clock
    clock.advance(499);
    assert.deepEqual(fired, []);
    clock.advance(1);
    assert.deepEqual(fired, ['b']);
    clock.advance(300);
    assert.deepEqual(fired, ['b', 'a']);
  });
  test('a handler that throws: onError hears it and the other due timers still fire; without onError it is thrown on', () => {
    const clock = new FakeClock(1000);
    const errors: string[] = [];
    const fired: string[] = [];
    const boom = {
      onTimer: () => {
        throw new Error('boom');
      },
    };
    const ok = { onTimer: (k: string) => fired.push(k) };
    const q = new TimerQueue<string>(clock, (err, owner) =>
      errors.push(`${(err as Error).message} ${owner === boom}`),
    );
    q.arm(new TimerSlot(boom, 'x'), 100, 'B');
    q.arm(new TimerSlot(ok, 'x'), 100, 'F');
    q.arm(new TimerSlot(ok, 'x'), 200, 'J');
    clock.advance(100);
    assert.deepEqual(errors, ['boom true']);
    assert.deepEqual(fired, ['F']);
    clock.advance(100);
    assert.deepEqual(fired, ['F', 'J'], 'the queue runs on');

    const bare = new TimerQueue<string>(clock);
    bare.arm(new TimerSlot(boom, 'x'), 100, 'B');
    bare.arm(new TimerSlot(ok, 'x'), 300, 'K');
    assert.throws(() => clock.advance(100), /boom/);
    clock.advance(200);
    assert.deepEqual(fired, ['F', 'J', 'K'], 'rescheduled before the error went on');
  });
});
