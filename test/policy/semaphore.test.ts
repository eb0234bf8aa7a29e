import t from 'tap'
import { drainsInFlight, semaphoreBlock } from '../../src/policy/semaphore.ts'
import { fleet, policy } from '../support/core.ts'

t.test('slots are counted from persisted phases: cordoned, draining, remediating and failed hold one', async t => {
  const snapshot = fleet({ app: 8 }, {
    'app-1': { phase: 'cordoned' },
    'app-2': { phase: 'draining' },
    'app-3': { phase: 'remediating' },
    'app-4': { phase: 'failed' },
    'app-5': { phase: 'pending' },
    'app-6': { phase: 'cooldown' },
    'app-7': { phase: 'cancelled' }
  })
  t.equal(drainsInFlight(snapshot), 4)
  t.match(semaphoreBlock(4, policy({ maxConcurrentDrains: 4 }))?.reason, /4 of 4 drain slots in use/)
  t.equal(semaphoreBlock(3, policy({ maxConcurrentDrains: 4 })), undefined)
})
