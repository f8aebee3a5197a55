// Runs SQL steps through pgjdbc (the JDBC driver of DBeaver and most Java tools; extended
// protocol, server-side prepared statements) and prints what the server answered, one
// line per step, for the Rust tests to check.
//
// java -cp postgresql.jar PgjdbcSteps.java <jdbc-url> <user> <password|-> < steps
// Each input line is a step: "query<TAB>SQL", "prepared<TAB>SQL" (prepared five times, so
// pgjdbc switches to a named server-side statement) or "fetch<TAB>SQL" (a cursor read in
// batches of 100: autocommit off, setFetchSize). Output per step: "ok<TAB>rows" with the
// rows' first columns joined by ',' or "error<TAB>SQLSTATE<TAB>message".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.*;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class PgjdbcSteps {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        if (!args[2].equals("-")) props.setProperty("password", args[2]);
        props.setProperty("prepareThreshold", "1");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) continue;
                String[] step = line.split("\t", 2);
                try {
                    List<String> rows = new ArrayList<>();
                    switch (step[0]) {
                        case "query" -> {
                            conn.setAutoCommit(true);
                            try (Statement s = conn.createStatement()) {
                                if (s.execute(step[1])) collect(s.getResultSet(), rows);
                            }
                        }
                        case "prepared" -> {
                            conn.setAutoCommit(true);
                            try (PreparedStatement p = conn.prepareStatement(step[1])) {
                                for (int i = 0; i < 5; i++) {
                                    rows.clear();
                                    if (p.execute()) collect(p.getResultSet(), rows);
                                }
                            }
                        }
                        case "fetch" -> {
                            conn.setAutoCommit(false);
                            try (PreparedStatement p = conn.prepareStatement(step[1])) {
                                p.setFetchSize(100);
                                try (ResultSet r = p.executeQuery()) { collect(r, rows); }
                            }
                            conn.commit();
                        }
                        default -> throw new IllegalArgumentException("unknown step " + step[0]);
                    }
                    System.out.println("ok\t" + String.join(",", rows));
                } catch (SQLException e) {
                    if (!conn.getAutoCommit()) conn.rollback();
                    String message = String.valueOf(e.getMessage()).replace('\n', ' ').replace('\t', ' ');
                    System.out.println("error\t" + e.getSQLState() + "\t" + message);
                }
            }
        }
    }

    static void collect(ResultSet r, List<String> rows) throws SQLException {
        while (r.next()) rows.add(String.valueOf(r.getString(1)));
    }
}
