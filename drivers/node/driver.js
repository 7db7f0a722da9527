#!/usr/bin/env node
// The harness's driver for MQTT.js (Node), protocol 1.
//
// Reads commands from stdin and writes events to stdout, one JSON object per line, as
// harness/clients/procclient/PROTOCOL.md describes. Uses Debian's node-mqtt (MQTT.js 4.3.x), found through
// NODE_PATH=/usr/share/nodejs (procclient.Node sets it); scripts/deps.sh installs it.
//
// Settings, chosen as an MQTT.js user would configure a long-running service, so the harness judges MQTT.js's own
// resilience and not the driver's:
//   - mqtt.connect() with MQTT.js's defaults for resilience: reconnectPeriod 1000 ms (a fixed 1 s between attempts;
//     MQTT.js 4 has no backoff), resubscribe true (subscriptions re-sent after a reconnect when the session is
//     clean), queueQoSZero true (QoS 0 publishes made while offline are queued and sent after the reconnect), the
//     in-memory outgoing store (QoS 1/2 messages in flight are re-sent after a reconnect). MQTT.js has no in-flight
//     window: every publish goes out at once. Settings "reconnect_period_ms" and "queue_qos_zero" change them.
//   - The first connection is a single attempt: if it fails (error, close or connectTimeout before CONNACK), the
//     driver answers it failed and ends the client (MQTT.js would otherwise retry forever). From then on MQTT.js
//     reconnects by itself.
//   - keepalive: whole seconds, rounded up; 0 keeps MQTT.js's 60 s. MQTT.js drops the connection when no PINGRESP
//     came by the next keepalive tick; ping_timeout_ms and response_timeout_ms have no equivalent and are ignored.
//     connect_timeout_ms is MQTT.js's connectTimeout (default 30 s), the wait for CONNACK.
//   - up is sent at the CONNACK that accepts a connection (MQTT.js's 'packetreceive' event), as the protocol asks,
//     and not at MQTT.js's 'connect' event: after a reconnect MQTT.js 4.3 emits 'connect' only once it has
//     re-sent every stored QoS 1/2 publication, one at a time, and had each one acknowledged (new publishes wait
//     behind them), so 'connect' would time a reconnect from the end of that replay, or never when a re-sent
//     publication's PUBACK is lost.
//   - publish answers when MQTT.js calls the publish callback: for QoS 1 on PUBACK, for QoS 0 when written.
//   - disconnect is client.end(false): MQTT.js first waits for the messages in flight, then sends DISCONNECT.
//   - close exits the process without DISCONNECT, so the kernel closes the socket and the broker publishes the will.
'use strict'

const readline = require('readline')
const mqtt = require('mqtt')
const version = require('mqtt/package.json').version

const PROTOCOL = 1

function emit (obj) {
  // Writes to a pipe are synchronous on Linux, so nothing is lost at process.exit.
  process.stdout.write(JSON.stringify(obj) + '\n')
}
const ok = (id, extra) => emit(Object.assign({ ev: 'result', id, ok: true }, extra))
function fail (id, msg, notSent) {
  const ev = { ev: 'result', id, ok: false, error: String(msg) }
  if (notSent) ev.not_sent = true
  emit(ev)
}

let client = null
let up = false
let lastError = ''
let disconnecting = false

function connect (id, cmd) {
  if (client) return fail(id, 'connect called twice')
  const o = cmd.options
  const s = cmd.settings || {}
  const opts = {
    clientId: o.client_id,
    clean: o.clean_session,
    protocolVersion: 4,
    keepalive: o.keepalive_ms > 0 ? Math.ceil(o.keepalive_ms / 1000) : 60,
    reconnectPeriod: s.reconnect_period_ms !== undefined ? s.reconnect_period_ms : 1000,
    queueQoSZero: s.queue_qos_zero !== undefined ? s.queue_qos_zero : true
  }
  if (o.connect_timeout_ms > 0) opts.connectTimeout = o.connect_timeout_ms
  if (o.will) {
    opts.will = { topic: o.will.topic, payload: Buffer.from(o.will.payload || '', 'base64'), qos: o.will.qos, retain: o.will.retain }
  }
  let pending = id // the first connection, until it is answered
  const c = mqtt.connect({ host: o.host, port: o.port, protocol: 'mqtt', ...opts })
  client = c
  const firstFailed = (reason) => {
    if (pending === null) return false
    fail(pending, 'connect: ' + reason)
    pending = null
    c.end(true)
    return true
  }
  // Up at the CONNACK that accepts the connection: MQTT.js's own 'connect' event comes only once it has
  // re-sent its stored publications and had each one acknowledged (see the header).
  c.on('packetreceive', (packet) => {
    if (packet.cmd !== 'connack' || packet.returnCode !== 0) return
    up = true
    emit({ ev: 'up', session_present: !!packet.sessionPresent })
    if (pending !== null) {
      ok(pending)
      pending = null
    }
  })
  c.on('error', (err) => {
    lastError = err && err.message ? err.message : String(err)
    emit({ ev: 'log', level: 'warn', msg: 'error: ' + lastError })
    firstFailed(lastError)
  })
  c.on('close', () => {
    const reason = lastError || 'connection closed'
    lastError = ''
    if (firstFailed(reason)) return
    if (up) {
      up = false
      emit({ ev: 'down', reason, reconnecting: !disconnecting })
    } else if (!disconnecting) {
      emit({ ev: 'connect_failed', reason })
    }
  })
  c.on('reconnect', () => emit({ ev: 'reconnect' }))
  c.on('message', (topic, payload, packet) => {
    emit({ ev: 'message', topic, payload: payload.toString('base64'), qos: packet.qos, retain: !!packet.retain, dup: !!packet.dup })
  })
}

const handlers = {
  hello (id) {
    ok(id, { hello: { protocol: PROTOCOL, driver: 'node-mqttjs', library: 'mqtt.js', version, capabilities: ['dup', 'session_present'] } })
  },
  connect,
  publish (id, cmd) {
    const payload = Buffer.from(cmd.payload || '', 'base64')
    client.publish(cmd.topic, payload, { qos: cmd.qos || 0, retain: !!cmd.retain }, (err) => {
      if (err) fail(id, 'publish: ' + err.message)
      else ok(id)
    })
  },
  subscribe (id, cmd) {
    client.subscribe(cmd.filter, { qos: cmd.qos || 0 }, (err, granted) => {
      if (err) return fail(id, 'subscribe: ' + err.message)
      if ((granted || []).some((g) => g.qos === 128)) return fail(id, 'subscription refused (SUBACK 0x80)')
      ok(id)
    })
  },
  unsubscribe (id, cmd) {
    client.unsubscribe(cmd.filter, (err) => (err ? fail(id, 'unsubscribe: ' + err.message) : ok(id)))
  },
  disconnect (id) {
    if (!client) return ok(id)
    disconnecting = true
    client.end(false, (err) => (err ? fail(id, 'disconnect: ' + err.message) : ok(id)))
  },
  close (id) {
    ok(id)
    process.exit(0) // no DISCONNECT: the broker sees the socket close
  },
  ping (id) { ok(id) }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  const cmd = JSON.parse(line)
  const h = handlers[cmd.cmd]
  if (!h) return fail(cmd.id, 'unknown command ' + JSON.stringify(cmd.cmd))
  if (!client && ['publish', 'subscribe', 'unsubscribe'].includes(cmd.cmd)) return fail(cmd.id, 'not connected', true)
  h(cmd.id, cmd)
})
rl.on('close', () => process.exit(0)) // stdin closed: as close
