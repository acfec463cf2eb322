// The one definition of "a user's groups": their memberships and, through group_parents, every
// ancestor of those groups (nested groups; group_parents is empty for most deployments, so the
// recursive step is one index probe). UNION deduplicates the walk and stops it on a cycle.

/** A scalar subquery: the sorted names of the groups of the user whose id is `userId` (an SQL expression). */
export function userGroupsSubquery(userId: string): string {
  return `(WITH RECURSIVE up(id) AS (SELECT m.group_id FROM memberships m WHERE m.user_id = ${userId}
      UNION SELECT gp.parent_id FROM group_parents gp JOIN up ON gp.group_id = up.id)
    SELECT array_agg(g.name ORDER BY g.name) FROM up JOIN groups g ON g.id = up.id)`;
}
