// The admin API's connector status (latest successful login, latest error per connector) asks
// for the newest event of one type of one connector. With only (connector_id, id), a type that is
// rare (login.error on a healthy connector) would walk the connector's whole history backwards on
// every connectors list; (connector_id, type, id) answers it with one index probe.
import type { Knex } from 'knex';

export const name = '0011-connector-status';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX audit_events_connector_type ON audit_events (connector_id, type, id) WHERE connector_id IS NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS audit_events_connector_type');
}
