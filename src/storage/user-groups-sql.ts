// The one definition of "a user's groups": their memberships and, through group_parents, every
// ancestor of those groups (nested groups; group_parents is empty for most deployments, so the
// recursive step is one index probe). UNION deduplicates the walk and stops it on a cycle.
//
// Each step is a LATERAL subquery that PostgreSQL cannot fold into a join (OFFSET 0, LIMIT 1):
// a keyed index lookup per group, whatever the statistics. As plain joins, the generic plan of
// a prepared statement hashed every row of `groups` (and of `group_parents`) for each lookup:
// every login and account lookup read the whole groups table.

/** A scalar subquery: the sorted names of the groups of the user whose id is `userId` (an SQL expression). */
export function userGroupsSubquery(userId: string): string {
  return `(WITH RECURSIVE up(id) AS (SELECT m.group_id FROM memberships m WHERE m.user_id = ${userId}
      UNION SELECT gp.parent_id FROM up CROSS JOIN LATERAL (SELECT parent_id FROM group_parents WHERE group_id = up.id OFFSET 0) gp)
    SELECT array_agg(g.name ORDER BY g.name) FROM up CROSS JOIN LATERAL (SELECT name FROM groups WHERE id = up.id LIMIT 1) g)`;
}
