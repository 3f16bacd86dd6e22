/** A role change, as the daemon's hook hears of it: the new role and why. */
export type Role = 'primary' | 'secondary' | 'alone' | 'active' | 'stopped';
export type RoleListener = (role: Role, reason: string) => void;
