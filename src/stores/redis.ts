// TODO: placeholder until the Redis token store lands.
export {};
