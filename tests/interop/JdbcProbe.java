// JdbcProbe: drives loch through pgjdbc (Debian's libpostgresql-jdbc-java) for
// tests/integration/test_pgwire.py: a prepared query, a plain statement, a cursor-mode
// fetch (row limits, PortalSuspended) and DatabaseMetaData. Prints key=value lines.
import java.sql.*;
import java.util.*;

public class JdbcProbe {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            try (PreparedStatement ps = c.prepareStatement("SELECT id, name, balance FROM bank.accounts WHERE id = ?")) {
                ps.setInt(1, 2);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("query=" + rs.getLong(1) + "|" + rs.getString(2) + "|" + rs.getBigDecimal(3));
                }
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM bank.accounts")) {
                rs.next();
                System.out.println("count=" + rs.getLong(1));
            }
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(100);
                try (ResultSet rs = st.executeQuery("SELECT range FROM range(1000)")) {
                    long n = 0, sum = 0;
                    while (rs.next()) { n++; sum += rs.getLong(1); }
                    if (sum != 999L * 1000 / 2) throw new AssertionError("sum " + sum);
                    System.out.println("fetch=" + n);
                }
            }
            c.commit();
            c.setAutoCommit(true);
            DatabaseMetaData md = c.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
            }
            System.out.println("tables=" + String.join(",", tables));
            List<String> cols = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "bank", "accounts", "%")) {
                while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
            System.out.println("columns=" + String.join(",", cols));
            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
            }
            System.out.println("schemas=" + String.join(",", schemas));
            int pks = 0;
            try (ResultSet rs = md.getPrimaryKeys(null, "bank", "accounts")) {
                while (rs.next()) pks++;
            }
            System.out.println("pks=" + pks);
            // past pgjdbc's prepareThreshold (5): a named server-side statement, binary results
            try (PreparedStatement ps = c.prepareStatement("SELECT ?::INTEGER + 1, ?::VARCHAR, ?::TIMESTAMP, ?::DECIMAL(10,2)")) {
                String last = "";
                for (int i = 0; i < 8; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "s" + i);
                    ps.setTimestamp(3, Timestamp.valueOf("2024-01-02 03:04:05.123456"));
                    ps.setBigDecimal(4, new java.math.BigDecimal("-12.34"));
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        last = rs.getInt(1) + "|" + rs.getString(2) + "|" + rs.getTimestamp(3) + "|" + rs.getBigDecimal(4);
                    }
                }
                System.out.println("prepared=" + last);
            }
        }
    }
}
