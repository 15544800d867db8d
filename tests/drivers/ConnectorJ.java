// The driver scenario for MariaDB Connector/J, with the driver's default options.
//
//     java -cp mariadb-java-client.jar ConnectorJ.java HOST PORT USER PASSWORD DATABASE
//
// Prints one line per step (values, row counts, error codes), the same text whichever server
// it talks to, so that a run through the router can be compared with a run on MariaDB direct.
// Defaults that matter here: autocommit on, allowMultiQueries off, useAffectedRows off (update
// counts are rows matched), parameters interpolated in the client (useServerPrepStmts off),
// batches as the driver chooses to send them. The driver puts the connection id in error
// messages ("(conn=12) "): it is replaced by "(conn=N) " so runs compare.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.SQLWarning;
import java.sql.Savepoint;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

public class ConnectorJ {
    static final String UNICODE = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \uD83D\uDE00";
    static final String DOC = "{\"a\": 1, \"b\": [true, null], \"s\": \"\u00fc\"}";
    static final byte[] BLOB = new byte[256];

    static {
        for (int i = 0; i < 256; i++) BLOB[i] = (byte) i;
    }

    interface Step {
        String run() throws Exception;
    }

    static void out(String step, String text) {
        System.out.println(step + ": " + text);
        System.out.flush();
    }

    static String noConnId(String s) {
        return s == null ? null : s.replaceAll("\\(conn=\\d+\\) ", "(conn=N) ");
    }

    static String error(Throwable e) {
        if (e instanceof SQLException) {
            SQLException s = (SQLException) e;
            return "error " + s.getErrorCode() + " " + s.getSQLState() + " " + e.getClass().getSimpleName()
                    + " " + noConnId(s.getMessage());
        }
        return "error " + e.getClass().getSimpleName() + " " + noConnId(e.getMessage());
    }

    // Runs one step, printing what it returns, or the error it throws.
    static void step(String name, Step s) {
        try {
            out(name, s.run());
        } catch (Throwable e) {
            out(name, error(e));
        }
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    static String value(Object v) {
        if (v == null) return "null";
        if (v instanceof byte[]) return "byte[]:" + hex((byte[]) v);
        return v.getClass().getSimpleName() + ":" + v;
    }

    static String rows(ResultSet rs) throws SQLException {
        int n = rs.getMetaData().getColumnCount();
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) row.add(value(rs.getObject(i)));
            out.add(String.join(", ", row));
        }
        rs.close();
        return String.join(" | ", out);
    }

    static String columns(ResultSetMetaData md) throws SQLException {
        List<String> out = new ArrayList<>();
        for (int i = 1; i <= md.getColumnCount(); i++) {
            out.add(md.getColumnLabel(i) + ":" + md.getColumnTypeName(i) + "/" + md.getColumnType(i) + "/"
                    + md.getColumnClassName(i) + "/" + md.getPrecision(i) + "/" + md.isNullable(i));
        }
        return String.join(" ", out);
    }

    // The driver's warnings (it reads them from the server when the statement had some).
    static String warnings(SQLWarning w) {
        List<String> out = new ArrayList<>();
        for (; w != null; w = w.getNextWarning()) out.add(w.getErrorCode() + " " + w.getSQLState() + " " + noConnId(w.getMessage()));
        return "warnings=" + out;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:mariadb://" + args[0] + ":" + args[1] + "/" + args[4];
        Connection conn;
        try {
            conn = DriverManager.getConnection(url, args[2], args[3]);
            out("connect", "ok autocommit=" + conn.getAutoCommit() + " product="
                    + conn.getMetaData().getDatabaseProductName() + " isolation=" + conn.getTransactionIsolation());
        } catch (Throwable e) {
            out("connect", error(e));
            return;
        }
        Statement st = conn.createStatement();
        Step drop = () -> {
            int n = st.executeUpdate("DROP TABLE IF EXISTS drv_t");
            return "count=" + n + " " + warnings(st.getWarnings());
        };
        step("drop", drop);
        step("create", () -> "count=" + st.executeUpdate(
                "CREATE TABLE drv_t (id BIGINT PRIMARY KEY, name VARCHAR(50), doc JSON, b BLOB)"));
        step("insert_params", () -> {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO drv_t (id, name, doc, b) VALUES (?, ?, ?, ?)")) {
                ps.setLong(1, 1);
                ps.setString(2, UNICODE);
                ps.setString(3, DOC);
                ps.setBytes(4, BLOB);
                return "count=" + ps.executeUpdate();
            }
        });
        // A JDBC batch: the driver decides how to send it (one statement each, or a bulk).
        step("insert_multi", () -> {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO drv_t (id, name, doc, b) VALUES (?, ?, ?, ?)")) {
                Object[][] rows = {
                    {2L, "two", "{\"n\": 2}", new byte[] {0, 1}},
                    {3L, "three", null, null},
                    {4L, "four", "[]", new byte[0]},
                };
                for (Object[] r : rows) {
                    for (int i = 0; i < r.length; i++) ps.setObject(i + 1, r[i]);
                    ps.addBatch();
                }
                return "counts=" + Arrays.toString(ps.executeBatch());
            }
        });
        step("update_unchanged_one", () -> "count=" + st.executeUpdate("UPDATE drv_t SET name = 'two' WHERE id = 2"));
        step("update_unchanged_all", () -> "count=" + st.executeUpdate("UPDATE drv_t SET name = name"));
        step("select", () -> {
            ResultSet rs = st.executeQuery("SELECT id, name, doc, b, HEX(name) FROM drv_t ORDER BY id");
            return "columns=" + columns(rs.getMetaData()) + " rows=" + rows(rs);
        });
        step("select_prepared", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT id, name, doc, b FROM drv_t WHERE id = ?")) {
                ps.setLong(1, 1);
                ResultSet rs = ps.executeQuery();
                return "columns=" + columns(rs.getMetaData()) + " rows=" + rows(rs);
            }
        });
        for (String finish : new String[] {"commit", "rollback"}) {
            step("txn_" + finish, () -> {
                conn.setAutoCommit(false);
                try {
                    int n = st.executeUpdate("INSERT INTO drv_t (id, name) VALUES (" + (finish.equals("commit") ? 10 : 11)
                            + ", '" + finish + "')");
                    if (finish.equals("commit")) conn.commit(); else conn.rollback();
                    return "count=" + n + " rows=" + rows(st.executeQuery("SELECT id, name FROM drv_t WHERE id IN (10, 11) ORDER BY id"));
                } finally {
                    conn.setAutoCommit(true);
                }
            });
        }
        step("savepoint", () -> {
            conn.setAutoCommit(false);
            try {
                st.executeUpdate("INSERT INTO drv_t (id, name) VALUES (20, 'kept')");
                Savepoint sp = conn.setSavepoint("sp1");
                st.executeUpdate("INSERT INTO drv_t (id, name) VALUES (21, 'undone')");
                conn.rollback(sp);
                conn.commit();
                return rows(st.executeQuery("SELECT id, name FROM drv_t WHERE id IN (20, 21) ORDER BY id"));
            } finally {
                conn.setAutoCommit(true);
            }
        });
        step("warning_select", () -> {
            try (Statement w = conn.createStatement()) {
                String got = rows(w.executeQuery("SELECT CAST('12abc' AS SIGNED)"));
                return got + " " + warnings(w.getWarnings()) + " show_warnings="
                        + rows(w.executeQuery("SHOW WARNINGS"));
            }
        });
        step("warning_insert_ignore", () -> {
            try (Statement w = conn.createStatement()) {
                int n = w.executeUpdate("INSERT IGNORE INTO drv_t (id, name) VALUES (1, 'dup')");
                return "count=" + n + " " + warnings(w.getWarnings()) + " show_warnings="
                        + rows(w.executeQuery("SHOW WARNINGS"));
            }
        });
        // allowMultiQueries is off by default.
        step("multi_statement", () -> {
            boolean isSet = st.execute("SELECT 1 AS a; UPDATE drv_t SET name = 'multi' WHERE id = 3; SELECT name FROM drv_t WHERE id = 3");
            List<String> sets = new ArrayList<>();
            for (int i = 0; i < 5; i++) {
                if (isSet) sets.add("[rows=" + rows(st.getResultSet()) + "]");
                else if (st.getUpdateCount() != -1) sets.add("[count=" + st.getUpdateCount() + "]");
                else break;
                isSet = st.getMoreResults();
            }
            return String.join(" ", sets);
        });
        step("duplicate_key", () -> "count=" + st.executeUpdate("INSERT INTO drv_t (id, name) VALUES (2, 'again')"));
        step("session", () -> rows(st.executeQuery("SELECT @@autocommit, @@character_set_client, @@sql_mode")));
        step("close", () -> {
            conn.close();
            return "ok";
        });
    }
}
