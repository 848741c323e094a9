#!/bin/sh
# nubo's mariadb start: system tables on first start (mariadbd --bootstrap, as
# mariadb-install-db does), root@'%' with $MARIADB_ROOT_PASSWORD (none if unset), then
# mariadbd in the foreground. Extra arguments go to mariadbd.
set -e
datadir=/var/lib/mysql
share=/usr/share/mysql
if [ ! -d "$datadir/mysql" ]; then
    echo "nubo-mariadb: creating the system tables in $datadir"
    pw=$(printf '%s' "${MARIADB_ROOT_PASSWORD:-}" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")
    {
        echo "create database if not exists mysql;"
        echo "use mysql;"
        echo "SET @auth_root_socket=NULL;"
        cat "$share/mysql_system_tables.sql" "$share/mysql_performance_tables.sql" \
            "$share/mysql_system_tables_data.sql"
        # Bootstrap runs without the grant tables; loading them makes the account statements work.
        echo "FLUSH PRIVILEGES;"
        echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$pw';"
        echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';"
    } | /usr/sbin/mariadbd --defaults-file=/etc/mysql/my.cnf --bootstrap --user=root \
        --datadir="$datadir" --log-warnings=0 --enforce-storage-engine="" > /dev/null
fi
exec /usr/sbin/mariadbd --defaults-file=/etc/mysql/my.cnf --user=root --datadir="$datadir" "$@"
